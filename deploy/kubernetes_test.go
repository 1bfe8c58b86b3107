package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// k8sDir holds the kustomize base and overlays.
var k8sDir = filepath.Join(repoRoot, "deploy", "kubernetes")

// k8sBuilds are the kustomizations `kubectl apply -k` is documented for.
var k8sBuilds = []string{"base", "overlays/example"}

// k8sServices are the Deployments, by the name of their image, with the prefix of their
// environment variables. The topics Job runs the all-in-one image.
var k8sServices = map[string]string{
	"collector":   "COLLECTOR_",
	"validator":   "VALIDATOR_",
	"lakewriter":  "LAKEWRITER_",
	"compactor":   "COMPACTOR_",
	"clickstream": "CLICKSTREAM_",
}

// k8sStrict decodes with the API server's own types and refuses unknown and duplicate fields, so
// a misspelled or misplaced field fails here instead of being dropped silently by kubectl's
// client-side apply (or rejected only by the cluster).
var k8sStrict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// k8sObjects is one kustomize build, decoded.
type k8sObjects struct {
	name        string
	all         []runtime.Object
	deployments map[string]*appsv1.Deployment
	jobs        map[string]*batchv1.Job
	configMaps  map[string]*corev1.ConfigMap
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	namespaces  []*corev1.Namespace
}

func k8sDecode(data []byte) (runtime.Object, error) {
	obj, _, err := k8sStrict.Decode(data, nil, nil)
	return obj, err
}

var k8sCache = struct {
	sync.Mutex
	builds map[string]*k8sObjects
}{builds: map[string]*k8sObjects{}}

// k8sBuild runs kustomize in process (krusty is what `kubectl apply -k` and `kustomize build`
// run) and decodes every resulting object strictly. Builds are cached: the tests share them.
func k8sBuild(t *testing.T, dir string) *k8sObjects {
	t.Helper()
	k8sCache.Lock()
	defer k8sCache.Unlock()
	if b, ok := k8sCache.builds[dir]; ok {
		return b
	}
	abs, err := filepath.Abs(filepath.Join(k8sDir, dir))
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &k8sObjects{name: dir, deployments: map[string]*appsv1.Deployment{}, jobs: map[string]*batchv1.Job{},
		configMaps: map[string]*corev1.ConfigMap{}}
	for _, r := range m.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := k8sDecode(data)
		if err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", dir, r.GetKind(), r.GetName(), err)
		}
		b.all = append(b.all, obj)
		switch o := obj.(type) {
		case *appsv1.Deployment:
			b.deployments[o.Name] = o
		case *batchv1.Job:
			b.jobs[o.Name] = o
		case *corev1.ConfigMap:
			b.configMaps[o.Name] = o
		case *corev1.Service:
			b.services = append(b.services, o)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas = append(b.hpas, o)
		case *corev1.Namespace:
			b.namespaces = append(b.namespaces, o)
		default:
			t.Fatalf("%s: %T %s: no check covers this kind; add one to kubernetes_test.go", dir, obj, r.GetName())
		}
	}
	k8sCache.builds[dir] = b
	return b
}

// k8sEach runs check on every build as a subtest.
func k8sEach(t *testing.T, check func(t *testing.T, b *k8sObjects)) {
	for _, dir := range k8sBuilds {
		t.Run(dir, func(t *testing.T) { check(t, k8sBuild(t, dir)) })
	}
}

func TestKubernetesBuilds(t *testing.T) {
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		for _, name := range []string{"collector", "validator", "lakewriter", "compactor"} {
			if _, ok := b.deployments[name]; !ok {
				t.Errorf("Deployment %s missing", name)
			}
		}
		if len(b.jobs) == 0 {
			t.Error("no Job: the topics job is missing")
		}
	})
}

// Every file kustomize reads as a resource or a patch is decoded on its own too, so that a field a
// patch misspells fails even when the patch merges into nothing; kustomization files are decoded
// strictly into kustomize's own type.
func TestKubernetesFilesDecodeStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(k8sDir, path)
		if d.Name() == "kustomization.yaml" {
			var k kusttypes.Kustomization
			if err := yaml.UnmarshalStrict(data, &k); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
			return nil
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				break
			}
			if len(bytes.TrimSpace(k8sStripComments(doc))) == 0 {
				continue
			}
			if _, err := k8sDecode(doc); err != nil {
				t.Errorf("%s document %d does not decode strictly: %v", rel, i+1, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d resources found under %s", n, k8sDir)
	}
}

func k8sStripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// k8sPod is a pod template with where it comes from.
type k8sPod struct {
	kind, name string
	meta       metav1.ObjectMeta
	spec       corev1.PodSpec
}

func (b *k8sObjects) pods() []k8sPod {
	var out []k8sPod
	for _, d := range k8sSorted(b.deployments) {
		out = append(out, k8sPod{"Deployment", d.Name, d.Spec.Template.ObjectMeta, d.Spec.Template.Spec})
	}
	for _, j := range k8sSorted(b.jobs) {
		out = append(out, k8sPod{"Job", j.Name, j.Spec.Template.ObjectMeta, j.Spec.Template.Spec})
	}
	return out
}

func k8sSorted[T any](m map[string]T) []T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]T, 0, len(m))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// k8sImageService is the service an image runs: the last path element of its name, whatever
// registry or newName an overlay gives it.
func k8sImageService(image string) string {
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name[strings.LastIndex(name, "/")+1:]
}

// k8sImagePinned: a digest, or a tag other than latest. Without one the image is :latest, which
// changes under the same manifest.
func k8sImagePinned(image string) bool {
	if regexp.MustCompile(`@sha256:[0-9a-f]{64}$`).MatchString(image) {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < strings.LastIndex(image, "/") || i < 0 {
		return false
	}
	tag := image[i+1:]
	return tag != "" && tag != "latest"
}

func TestKubernetesImagePinned(t *testing.T) {
	for image, want := range map[string]bool{
		"clickstream/collector:0.1.0": true, "clickstream/collector": false, "clickstream/collector:latest": false,
		"host:5000/clickstream/collector": false, "host:5000/clickstream/collector:0.1.0": true,
		"clickstream/collector@sha256:" + strings.Repeat("ab", 32): true,
	} {
		if got := k8sImagePinned(image); got != want {
			t.Errorf("k8sImagePinned(%q) = %v", image, got)
		}
	}
	if s := k8sImageService("host:5000/clickstream/collector:0.1.0"); s != "collector" {
		t.Errorf("k8sImageService = %q", s)
	}
}

// k8sEnv is the environment a container starts with: explicit env, then envFrom (with its
// prefix), as Kubernetes resolves them, with every referenced ConfigMap key checked to exist
// (a missing one keeps the pod from starting). Values from the downward API are "fieldRef:<path>".
func k8sEnv(t *testing.T, b *k8sObjects, where string, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.SecretRef != nil {
			continue // no Secrets in these manifests; an overlay's are not resolvable here
		}
		if from.ConfigMapRef == nil {
			t.Errorf("%s: envFrom without a source", where)
			continue
		}
		cm, ok := b.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: envFrom ConfigMap %s does not exist", where, from.ConfigMapRef.Name)
			continue
		}
		for k, v := range cm.Data {
			out[from.Prefix+k] = v
		}
	}
	// Explicit env wins over envFrom.
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			out[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := b.configMaps[ref.Name]
			if !ok {
				t.Errorf("%s: %s refers to ConfigMap %s, which does not exist", where, e.Name, ref.Name)
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				t.Errorf("%s: %s refers to key %s, which ConfigMap %s lacks", where, e.Name, ref.Key, ref.Name)
			}
			out[e.Name] = v
		default:
			out[e.Name] = "valueFrom"
		}
	}
	return out
}

// k8sEffective is what the service runs with: the value set, else the default.
func k8sEffective(settings map[string]setting, env map[string]string, name string) string {
	if v, ok := env[name]; ok {
		return v
	}
	return settings[name].Default
}

// Every container: pinned image, requests and limits, a non-root user, no privilege escalation,
// and only environment variables that a binary reads, each with the binary's own prefix (a
// misspelled variable is silently ignored by the service).
func TestKubernetesContainers(t *testing.T) {
	settings := knownSettings(t)
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		for _, p := range b.pods() {
			if p.spec.EnableServiceLinks == nil || *p.spec.EnableServiceLinks {
				// Kubernetes otherwise injects <SERVICE>_PORT, <SERVICE>_SERVICE_HOST, ... of
				// every Service in the namespace (COLLECTOR_PORT, VALIDATOR_SERVICE_HOST, ...),
				// names inside the services' own prefixes.
				t.Errorf("%s %s: enableServiceLinks should be false", p.kind, p.name)
			}
			if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
				t.Errorf("%s %s: automountServiceAccountToken should be false: the services never call the API server", p.kind, p.name)
			}
			if len(p.spec.InitContainers) > 0 {
				t.Errorf("%s %s: init containers are not checked here; extend the test", p.kind, p.name)
			}
			for _, c := range p.spec.Containers {
				where := fmt.Sprintf("%s %s container %s", p.kind, p.name, c.Name)
				if !k8sImagePinned(c.Image) {
					t.Errorf("%s: image %q is not pinned (tag other than latest, or digest)", where, c.Image)
				}
				prefix, ok := k8sServices[k8sImageService(c.Image)]
				if !ok {
					t.Errorf("%s: image %s is none of the clickstream images", where, c.Image)
					continue
				}
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, hasReq := c.Resources.Requests[r]
					lim, hasLim := c.Resources.Limits[r]
					if !hasReq || req.IsZero() {
						t.Errorf("%s: no %s request", where, r)
					}
					if !hasLim || lim.IsZero() {
						t.Errorf("%s: no %s limit", where, r)
					}
					if hasReq && hasLim && req.Cmp(lim) > 0 {
						t.Errorf("%s: %s request %s above the limit %s", where, r, req.String(), lim.String())
					}
				}
				if !k8sNonRoot(p.spec.SecurityContext, c.SecurityContext) {
					t.Errorf("%s: runAsNonRoot not true (the images run as 65532; the kubelet should refuse root)", where)
				}
				if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation should be false", where)
				}
				k8sNoShell(t, where, c)
				env := k8sEnv(t, b, where, c)
				for _, name := range slices.Sorted(maps.Keys(env)) {
					if _, ok := settings[name]; !ok {
						t.Errorf("%s: %s is not a setting of any binary (see README's configuration reference)", where, name)
					} else if !strings.HasPrefix(name, prefix) {
						t.Errorf("%s: %s is not a %s* setting of this image", where, name, prefix)
					}
				}
				if !strings.EqualFold(k8sEffective(settings, env, prefix+"LOG_FORMAT"), "json") {
					t.Errorf("%s: %sLOG_FORMAT should be json in a cluster", where, prefix)
				}
			}
		}
	})
}

func k8sNonRoot(pod *corev1.PodSecurityContext, c *corev1.SecurityContext) bool {
	nonRoot, user := false, int64(-1)
	if pod != nil {
		if pod.RunAsNonRoot != nil {
			nonRoot = *pod.RunAsNonRoot
		}
		if pod.RunAsUser != nil {
			user = *pod.RunAsUser
		}
	}
	if c != nil {
		if c.RunAsNonRoot != nil {
			nonRoot = *c.RunAsNonRoot
		}
		if c.RunAsUser != nil {
			user = *c.RunAsUser
		}
	}
	return nonRoot && user != 0
}

// The images are scratch plus the binary: no shell, no sleep. An exec command can only
// be the binary itself.
func k8sNoShell(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	check := func(what string, cmd []string) {
		if len(cmd) > 0 && !strings.HasPrefix(cmd[0], "/usr/local/bin/") {
			t.Errorf("%s: %s runs %q, which the image does not have (only /usr/local/bin/<binary>)", where, what, cmd[0])
		}
	}
	check("command", c.Command)
	for what, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
		if p != nil && p.Exec != nil {
			check(what, p.Exec.Command)
		}
	}
	if c.Lifecycle != nil {
		for what, h := range map[string]*corev1.LifecycleHandler{"preStop": c.Lifecycle.PreStop, "postStart": c.Lifecycle.PostStart} {
			if h != nil && h.Exec != nil {
				check(what, h.Exec.Command)
			}
		}
	}
}

// k8sPort resolves a probe's or Service's target port against a container's ports.
func k8sPort(c corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// Every Deployment: probes on the named admin port, which is the service's default admin port;
// each listen address bound on every interface at its default port and declared as a
// containerPort (and no other port); Prometheus annotations for that port; a grace period longer
// than the graceful shutdown plus the pre-stop delay.
func TestKubernetesDeployments(t *testing.T) {
	settings := knownSettings(t)
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		for _, d := range k8sSorted(b.deployments) {
			spec := d.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				t.Errorf("Deployment %s: %d containers, want one", d.Name, len(spec.Containers))
				continue
			}
			c := spec.Containers[0]
			where := "Deployment " + d.Name
			service := k8sImageService(c.Image)
			prefix := k8sServices[service]
			if service == "clickstream" || prefix == "" {
				t.Errorf("%s: runs image %s; the Deployments run the four service images", where, c.Image)
				continue
			}
			env := k8sEnv(t, b, where, c)
			adminPort, _ := strconv.Atoi(defaultPort(t, settings, prefix+"ADMIN_ADDR"))

			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: selector %v does not match its pod template's labels %v", where, d.Spec.Selector, d.Spec.Template.Labels)
			}

			// Probes: HTTP on the admin server, by port name.
			for _, pr := range []struct {
				what, path string
				probe      *corev1.Probe
			}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
				if pr.probe == nil || pr.probe.HTTPGet == nil {
					t.Errorf("%s: no HTTP %s", where, pr.what)
					continue
				}
				g := pr.probe.HTTPGet
				if g.Path != pr.path {
					t.Errorf("%s: %s path %s, want %s", where, pr.what, g.Path, pr.path)
				}
				if g.Port.Type != intstr.String {
					t.Errorf("%s: %s port %s should be the admin port's name", where, pr.what, g.Port.String())
				}
				cp, ok := k8sPort(c, g.Port)
				if !ok {
					t.Errorf("%s: %s port %s is no port of the container", where, pr.what, g.Port.String())
				} else if int(cp.ContainerPort) != adminPort {
					t.Errorf("%s: %s on port %d, the admin server's default port is %d", where, pr.what, cp.ContainerPort, adminPort)
				}
			}

			// Listen addresses and container ports.
			declared := map[int32]bool{}
			for _, cp := range c.Ports {
				declared[cp.ContainerPort] = false
			}
			for _, key := range []string{"ADMIN_ADDR", "HTTP_ADDR", "GRPC_ADDR"} {
				name := prefix + key
				def, ok := settings[name]
				if !ok {
					continue
				}
				addr, ok := env[name]
				if !ok {
					t.Errorf("%s: %s not set: the default %s is loopback, unreachable from outside the pod", where, name, def.Default)
					continue
				}
				if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" {
					t.Errorf("%s: %s=%s does not listen on every interface", where, name, addr)
				}
				got, want := int32(listenPort(t, addr)), int32(listenPort(t, def.Default))
				if got != want {
					t.Errorf("%s: %s port %d, the default is %d", where, name, got, want)
				}
				if _, ok := declared[got]; !ok {
					t.Errorf("%s: %s port %d is not a containerPort", where, name, got)
				}
				declared[got] = true
			}
			for p, used := range declared {
				if !used {
					t.Errorf("%s: containerPort %d is none of the service's listen addresses", where, p)
				}
			}

			// Prometheus scrapes the admin port by these annotations (deploy/monitoring).
			a := d.Spec.Template.Annotations
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != strconv.Itoa(adminPort) {
				t.Errorf("%s: pod annotations prometheus.io/scrape, /port, /path = %q, %q, %q; want \"true\", %q, \"/metrics\"",
					where, a["prometheus.io/scrape"], a["prometheus.io/port"], a["prometheus.io/path"], strconv.Itoa(adminPort))
			}

			// The kubelet sends SIGKILL at the end of the grace period, which counts from the
			// start of the pre-stop hook.
			shutdown, err := time.ParseDuration(k8sEffective(settings, env, prefix+"SHUTDOWN_TIMEOUT"))
			if err != nil {
				t.Errorf("%s: %sSHUTDOWN_TIMEOUT: %v", where, prefix, err)
			}
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown+preStop {
				t.Errorf("%s: terminationGracePeriodSeconds %v must exceed SHUTDOWN_TIMEOUT %v + preStop %v", where, k8sPtr(g), shutdown, preStop)
			}
			if service == "collector" && preStop <= 0 {
				t.Errorf("%s: no preStop sleep: the listeners would close while endpoints still send new connections", where)
			}
		}
	})
}

func k8sPtr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// Every Service selects the pods of one Deployment, on ports those pods have.
func TestKubernetesServices(t *testing.T) {
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		byName := map[string]*corev1.Service{}
		for _, s := range b.services {
			byName[s.Name] = s
			var matched []*appsv1.Deployment
			for _, d := range k8sSorted(b.deployments) {
				if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
					matched = append(matched, d)
				}
			}
			if len(matched) != 1 {
				t.Errorf("Service %s selects %d Deployments' pods, want one", s.Name, len(matched))
				continue
			}
			c := matched[0].Spec.Template.Spec.Containers[0]
			for _, p := range s.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				cp, ok := k8sPort(c, target)
				if !ok {
					t.Errorf("Service %s port %s: target %s is no port of Deployment %s", s.Name, p.Name, target.String(), matched[0].Name)
				} else if cp.ContainerPort != p.Port {
					t.Errorf("Service %s port %s: %d forwards to %d; clients expect the same number", s.Name, p.Name, p.Port, cp.ContainerPort)
				}
			}
		}
		// Clients reach the collector's WebSocket/HTTP and gRPC ports through its Service.
		settings := knownSettings(t)
		s, ok := byName["collector"]
		if !ok {
			t.Fatal("no collector Service")
		}
		for _, key := range []string{"COLLECTOR_HTTP_ADDR", "COLLECTOR_GRPC_ADDR"} {
			want, _ := strconv.Atoi(defaultPort(t, settings, key))
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == want }) {
				t.Errorf("collector Service has no port %d (%s)", want, key)
			}
		}
	})
}

// The collector: a PodDisruptionBudget and a HorizontalPodAutoscaler that fit together.
func TestKubernetesCollectorAvailability(t *testing.T) {
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		d, ok := b.deployments["collector"]
		if !ok {
			t.Fatal("no collector Deployment")
		}
		if d.Spec.Replicas != nil {
			t.Errorf("collector Deployment sets replicas %d: the HPA owns the count, and every apply would reset it", *d.Spec.Replicas)
		}
		var pdb *policyv1.PodDisruptionBudget
		for _, p := range b.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err != nil {
				t.Errorf("PodDisruptionBudget %s: %v", p.Name, err)
				continue
			}
			for _, other := range k8sSorted(b.deployments) {
				if sel.Empty() || sel.Matches(labels.Set(other.Spec.Template.Labels)) {
					if other.Name == "collector" {
						pdb = p
					} else {
						t.Errorf("PodDisruptionBudget %s also selects Deployment %s's pods", p.Name, other.Name)
					}
				}
			}
		}
		var hpa *autoscalingv2.HorizontalPodAutoscaler
		for _, h := range b.hpas {
			ref := h.Spec.ScaleTargetRef
			if ref.Kind == "Deployment" && ref.APIVersion == "apps/v1" && ref.Name == d.Name {
				hpa = h
			} else if _, ok := b.deployments[ref.Name]; !ok || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
				t.Errorf("HorizontalPodAutoscaler %s targets %s %s %s, which is not in the build", h.Name, ref.APIVersion, ref.Kind, ref.Name)
			}
		}
		if pdb == nil {
			t.Error("no PodDisruptionBudget selects the collector's pods")
		}
		if hpa == nil {
			t.Fatal("no HorizontalPodAutoscaler targets Deployment collector")
		}
		minReplicas := int32(1)
		if hpa.Spec.MinReplicas != nil {
			minReplicas = *hpa.Spec.MinReplicas
		}
		if minReplicas < 2 || hpa.Spec.MaxReplicas < minReplicas {
			t.Errorf("HPA replicas %d..%d: want at least 2, so that a disruption leaves one collector serving", minReplicas, hpa.Spec.MaxReplicas)
		}
		if pdb != nil {
			switch {
			case pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil:
				t.Error("collector PDB sets neither minAvailable nor maxUnavailable")
			case pdb.Spec.MinAvailable != nil:
				if v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(minReplicas), true); err != nil || v >= int(minReplicas) {
					t.Errorf("collector PDB minAvailable %s at %d replicas blocks every drain", pdb.Spec.MinAvailable.String(), minReplicas)
				}
			default:
				if v, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(minReplicas), true); err != nil || v < 1 || v >= int(minReplicas) {
					t.Errorf("collector PDB maxUnavailable %s at %d replicas: want 1 up to fewer than all", pdb.Spec.MaxUnavailable.String(), minReplicas)
				}
			}
		}
		// A CPU utilization target is a share of the CPU request.
		for _, m := range hpa.Spec.Metrics {
			if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType {
				for _, c := range d.Spec.Template.Spec.Containers {
					if _, ok := c.Resources.Requests[m.Resource.Name]; !ok {
						t.Errorf("HPA scales on %s utilization, but container %s requests no %s", m.Resource.Name, c.Name, m.Resource.Name)
					}
				}
			}
		}
		if len(hpa.Spec.Metrics) == 0 {
			t.Error("collector HPA has no metric")
		}
	})
}

// The services agree with each other on Kafka, topics and the lake, as they do by default.
func TestKubernetesPipelineSettings(t *testing.T) {
	settings := knownSettings(t)
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		all := map[string]string{}
		containers := map[string]corev1.Container{}
		for _, p := range b.pods() {
			for _, c := range p.spec.Containers {
				service := k8sImageService(c.Image)
				if _, dup := containers[service]; dup {
					t.Errorf("image %s runs in two workloads; the checks below assume one each", c.Image)
				}
				containers[service] = c
				for k, v := range k8sEnv(t, b, p.kind+" "+p.name, c) {
					all[k] = v
				}
			}
		}
		get := func(name string) string { return k8sEffective(settings, all, name) }

		// The topics job runs `clickstream topics`; the services do not create topics.
		topics, ok := containers["clickstream"]
		if !ok || !slices.Equal(topics.Args, []string{"topics"}) {
			t.Error("no Job runs `clickstream topics` with the clickstream image")
		}
		for _, k := range []string{"COLLECTOR_CREATE_TOPICS", "VALIDATOR_CREATE_TOPICS"} {
			if get(k) != "false" {
				t.Errorf("%s=%q: the topics Job creates the topics; the services should not need admin rights", k, get(k))
			}
		}

		// Topic names: set only where they agree with the defaults, and the same across services.
		for name, v := range all {
			if strings.HasSuffix(name, "TOPIC_PATTERN") || strings.HasSuffix(name, "DLQ_TOPIC") || name == "LAKEWRITER_TOPICS" {
				if v != settings[name].Default {
					t.Errorf("%s=%q, the default is %q: the other services, dashboards and tests use the default names", name, v, settings[name].Default)
				}
			}
		}
		for _, group := range [][]string{
			{"CLICKSTREAM_TOPIC_PATTERN", "COLLECTOR_TOPIC_PATTERN", "VALIDATOR_RAW_TOPIC_PATTERN"},
			{"CLICKSTREAM_DLQ_TOPIC", "VALIDATOR_DLQ_TOPIC", "LAKEWRITER_DLQ_TOPIC"},
		} {
			for _, name := range group[1:] {
				if get(name) != get(group[0]) || get(name) == "" {
					t.Errorf("%s=%q but %s=%q: the topics would not match", group[0], get(group[0]), name, get(name))
				}
			}
		}
		// The validator writes clickstream-<type>-valid (services/kafka.ValidTopic, not
		// configurable); the lakewriter's expression must take those and name the table.
		if re, err := regexp.Compile(get("LAKEWRITER_TOPICS")); err != nil {
			t.Errorf("LAKEWRITER_TOPICS: %v", err)
		} else if m := re.FindStringSubmatch("clickstream-add_to_cart-valid"); len(m) < 2 || m[1] != "add_to_cart" {
			t.Errorf("LAKEWRITER_TOPICS=%q does not take clickstream-add_to_cart-valid as table add_to_cart", get("LAKEWRITER_TOPICS"))
		}

		// Kafka: one cluster for all, not the loopback default (in a pod, that is the pod).
		brokers := get("CLICKSTREAM_KAFKA_BROKERS")
		for _, k := range []string{"COLLECTOR_KAFKA_BROKERS", "VALIDATOR_KAFKA_BROKERS", "LAKEWRITER_KAFKA_BROKERS", "CLICKSTREAM_KAFKA_BROKERS"} {
			if v := get(k); v != brokers || strings.Contains(v, "127.0.0.1") || strings.Contains(v, "localhost") {
				t.Errorf("%s=%q: every service should use the same, non-loopback brokers (topics job: %q)", k, v, brokers)
			}
		}
		// The lake: the lakewriter and the compactor on the same HDFS directory and metastore.
		for _, suffix := range []string{"LAKE_URL", "LAKE_HDFS_USER", "LAKE_METASTORE_URI", "LAKE_DATABASE"} {
			if a, c := get("LAKEWRITER_"+suffix), get("COMPACTOR_"+suffix); a != c {
				t.Errorf("LAKEWRITER_%s=%q but COMPACTOR_%s=%q", suffix, a, suffix, c)
			}
		}
		if u := get("LAKEWRITER_LAKE_URL"); !strings.HasPrefix(u, "hdfs://") {
			t.Errorf("LAKEWRITER_LAKE_URL=%q: a local path in a pod is lost with the pod", u)
		}
		if !strings.HasPrefix(get("LAKEWRITER_LAKE_METASTORE_URI"), "thrift://") {
			t.Errorf("LAKEWRITER_LAKE_METASTORE_URI=%q: want thrift://host:9083", get("LAKEWRITER_LAKE_METASTORE_URI"))
		}
		if d, ok := b.deployments["compactor"]; ok {
			spill := get("COMPACTOR_SPILL_DIR")
			mounted := spill == "" // the OS temp directory
			for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
				if spill != "" && (spill == m.MountPath || strings.HasPrefix(spill, m.MountPath+"/")) && !m.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("COMPACTOR_SPILL_DIR=%q is not on a writable volume (the root file system is read-only)", spill)
			}
		}

		// Replicas: the validator's transactional ids must differ per pod; the validator and
		// lakewriter gain nothing beyond the partition count; exactly one compactor.
		partitions, err := strconv.Atoi(get("CLICKSTREAM_TOPICS_PARTITIONS"))
		if err != nil {
			t.Errorf("CLICKSTREAM_TOPICS_PARTITIONS: %v", err)
		}
		replicas := func(name string) int32 {
			if d, ok := b.deployments[name]; ok && d.Spec.Replicas != nil {
				return *d.Spec.Replicas
			}
			return 1
		}
		if id, ok := all["VALIDATOR_INSTANCE_ID"]; ok && id != "fieldRef:metadata.name" {
			t.Errorf("VALIDATOR_INSTANCE_ID=%q: must differ per pod; leave it unset (host name) or take metadata.name", id)
		}
		for _, name := range []string{"validator", "lakewriter"} {
			if r := replicas(name); int(r) > partitions {
				t.Errorf("%s: %d replicas but %d partitions per topic: %d would sit idle", name, r, partitions, int(r)-partitions)
			}
		}
		if d, ok := b.deployments["compactor"]; ok {
			if replicas("compactor") != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("compactor: %d replicas, strategy %q: exactly one may run, so one replica and Recreate", replicas("compactor"), d.Spec.Strategy.Type)
			}
		}
	})
}

// A few of the API server's syntax rules that decoding does not apply: object, port and label
// names, and the environment variable names envFrom builds from ConfigMap keys and a prefix.
func TestKubernetesNames(t *testing.T) {
	k8sEach(t, func(t *testing.T, b *k8sObjects) {
		for _, obj := range b.all {
			m, err := k8sMeta(obj)
			if err != nil {
				t.Fatal(err)
			}
			where := fmt.Sprintf("%T %s", obj, m.GetName())
			nameRule := validation.IsDNS1123Subdomain
			if _, ok := obj.(*corev1.Service); ok {
				nameRule = validation.IsDNS1035Label
			}
			for _, msg := range nameRule(m.GetName()) {
				t.Errorf("%s: name: %s", where, msg)
			}
			labelSets := []map[string]string{m.GetLabels()}
			if d, ok := obj.(*appsv1.Deployment); ok {
				labelSets = append(labelSets, d.Spec.Template.Labels)
			}
			for _, set := range labelSets {
				for k, v := range set {
					for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
						t.Errorf("%s: label %s=%s: %s", where, k, v, msg)
					}
				}
			}
			if cm, ok := obj.(*corev1.ConfigMap); ok {
				for k := range cm.Data {
					for _, msg := range validation.IsConfigMapKey(k) {
						t.Errorf("%s: key %s: %s", where, k, msg)
					}
				}
			}
		}
		for _, p := range b.pods() {
			for _, c := range p.spec.Containers {
				for _, cp := range c.Ports {
					for _, msg := range validation.IsValidPortName(cp.Name) {
						t.Errorf("%s %s: port name %q: %s", p.kind, p.name, cp.Name, msg)
					}
				}
				for name := range k8sEnv(t, b, p.kind+" "+p.name, c) {
					for _, msg := range validation.IsEnvVarName(name) {
						t.Errorf("%s %s: variable %q: %s", p.kind, p.name, name, msg)
					}
				}
			}
		}
	})
}

// The overlay's objects live in its namespace, which it creates.
func TestKubernetesOverlayNamespace(t *testing.T) {
	b := k8sBuild(t, "overlays/example")
	if len(b.namespaces) != 1 {
		t.Fatalf("%d Namespace objects, want one", len(b.namespaces))
	}
	ns := b.namespaces[0].Name
	for _, obj := range b.all {
		m, err := k8sMeta(obj)
		if err != nil {
			t.Fatal(err)
		}
		if _, isNS := obj.(*corev1.Namespace); !isNS && m.GetNamespace() != ns {
			t.Errorf("%T %s in namespace %q, want %q", obj, m.GetName(), m.GetNamespace(), ns)
		}
	}
}

func k8sMeta(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}
