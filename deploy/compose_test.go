package deploy

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// clickstreamServices maps the compose services built from the root Dockerfile to the prefix of
// their environment variables and their binary.
var clickstreamServices = map[string]struct{ prefix, binary string }{
	"collector":  {"COLLECTOR_", "collector"},
	"validator":  {"VALIDATOR_", "validator"},
	"lakewriter": {"LAKEWRITER_", "lakewriter"},
	"compactor":  {"COMPACTOR_", "compactor"},
	"topics":     {"CLICKSTREAM_", "clickstream"},
}

// loadCompose parses docker-compose.yml with compose-go, the parser of the docker compose CLI:
// the file is validated against the Compose Specification's schema, interpolated, and every
// profile is enabled so that services behind one are checked too. No variable from this
// process's environment takes part, so the defaults written in the file are what is checked.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv([]string{}),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
}

func TestComposeLoads(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "clickstream" {
		t.Errorf("project name = %q", p.Name)
	}
	want := []string{"kafka", "topics", "namenode", "datanode", "postgres", "hive-metastore", "trino",
		"collector", "validator", "lakewriter", "compactor", "prometheus", "grafana", "spark"}
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
}

// A service is a job when it runs once: restart "no" and at least one service waits for it to
// complete, or it sits behind a profile as a tool (spark).
func isJob(p *types.Project, name string) bool {
	s := p.Services[name]
	if s.Restart != "no" {
		return false
	}
	if len(s.Profiles) > 0 {
		return true
	}
	for _, other := range p.Services {
		if d, ok := other.DependsOn[name]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return false
}

func TestComposeHealthChecks(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		hc := s.HealthCheck
		switch {
		case hc == nil:
			t.Errorf("%s: no healthcheck", name)
		case hc.Disable && !isJob(p, name):
			t.Errorf("%s: healthcheck disabled on a long-running service", name)
		case !hc.Disable && len(hc.Test) < 2:
			t.Errorf("%s: healthcheck has no test command", name)
		case !hc.Disable && (hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil):
			t.Errorf("%s: healthcheck without interval, timeout and retries", name)
		}
		if !isJob(p, name) && s.Restart != "unless-stopped" && s.Restart != "always" {
			t.Errorf("%s: a long-running service should restart (restart: unless-stopped), has %q", name, s.Restart)
		}
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if target.HealthCheck == nil || target.HealthCheck.Disable {
					t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !isJob(p, dep) {
					t.Errorf("%s waits for %s to complete, which is not a job", name, dep)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: wait for health or completion", name, dep, d.Condition)
			}
		}
	}
	// The clickstream services' health check is the binary's own probe of /readyz.
	for name, cs := range clickstreamServices {
		s := p.Services[name]
		if name == "topics" {
			continue
		}
		want := []string{"CMD", "/usr/local/bin/" + cs.binary, "-healthcheck"}
		if got := []string(s.HealthCheck.Test); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: healthcheck %q, want %q", name, got, want)
		}
	}
}

// pinned reports whether an image reference names a version: a digest, or a tag other than
// latest (and not a bare major or floating word such as "stable").
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon < slash+1 {
		return false
	}
	tag := image[colon+1:]
	return tag != "latest" && regexp.MustCompile(`^v?\d+(\.\d+)+`).MatchString(tag) || regexp.MustCompile(`^\d{3,}$`).MatchString(tag)
}

func TestPinned(t *testing.T) {
	for image, want := range map[string]bool{
		"apache/kafka:4.1.1": true, "trinodb/trino:476": true, "prom/prometheus:v3.5.0": true,
		"postgres:16.10": true, "x@sha256:abc": true,
		"postgres": false, "postgres:16": false, "apache/kafka:latest": false, "localhost:5000/img": false,
	} {
		if got := pinned(image); got != want {
			t.Errorf("pinned(%q) = %v, want %v", image, got, want)
		}
	}
}

// versionIn finds the first submatch of pattern in a file of the repository.
func versionIn(t *testing.T, file, pattern string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, file))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(pattern).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("%s: no match for %s", file, pattern)
	}
	return string(m[1])
}

func TestComposeImagesPinnedToLocalStackVersions(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if !pinned(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
	}
	// The images run what deploy/local runs (see its README), so a query that works on one works on
	// the other.
	want := map[string]string{
		"kafka":          "apache/kafka:" + versionIn(t, "deploy/local/poms/kafka/pom.xml", `<kafka.version>([^<]+)<`),
		"trino":          "trinodb/trino:" + versionIn(t, "deploy/local/stack.sh", `(?m)^TRINO_VERSION=(\S+)`),
		"hive-metastore": "clickstream/hive-metastore:" + versionIn(t, "deploy/local/stack.sh", `(?m)^HIVE_VERSION=(\S+)`),
		"spark":          "clickstream/spark:" + versionIn(t, "deploy/local/stack.sh", `PYSPARK_VERSION:-([0-9.]+)`),
	}
	for svc, image := range want {
		if got := p.Services[svc].Image; got != image {
			t.Errorf("%s: image %q, want %q (the local stack's version)", svc, got, image)
		}
	}
	hive := versionIn(t, "deploy/local/stack.sh", `(?m)^HIVE_VERSION=(\S+)`)
	if from := versionIn(t, "deploy/compose/hive-metastore/Dockerfile", `(?m)^FROM (apache/hive:\S+)`); from != "apache/hive:"+hive {
		t.Errorf("hive-metastore Dockerfile builds on %s, want apache/hive:%s", from, hive)
	}
	spark := versionIn(t, "deploy/local/stack.sh", `PYSPARK_VERSION:-([0-9.]+)`)
	if from := versionIn(t, "deploy/compose/spark/Dockerfile", `(?m)^FROM (apache/spark:\S+)`); !strings.HasPrefix(from, "apache/spark:"+spark+"-") {
		t.Errorf("spark Dockerfile builds on %s, want apache/spark:%s-…", from, spark)
	}
	for name := range clickstreamServices {
		s := p.Services[name]
		if s.Build == nil || s.Build.Target == "" {
			t.Errorf("%s: not built from a target of the root Dockerfile", name)
		}
	}
}

// env returns a service's environment with unset variables left out.
func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// effective is what a clickstream service runs with: the value compose sets, else the default.
func effective(settings map[string]setting, e map[string]string, name string) string {
	if v, ok := e[name]; ok {
		return v
	}
	return settings[name].Default
}

func TestComposeEnvironmentAndPorts(t *testing.T) {
	p := loadCompose(t)
	settings := knownSettings(t)
	all := map[string]string{} // every clickstream variable compose sets, for cross-service checks
	for name, cs := range clickstreamServices {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("service %s missing", name)
		}
		e := env(s)
		for k, v := range e {
			if !strings.HasPrefix(k, cs.prefix) {
				t.Errorf("%s: variable %s does not have the service's prefix %s", name, k, cs.prefix)
			}
			if _, ok := settings[k]; !ok {
				t.Errorf("%s: %s is not a setting of any binary (see README's configuration reference)", name, k)
			}
			all[k] = v
		}
		if name == "topics" {
			continue
		}
		// Each listen address: bound on every interface, on the default port, published.
		for _, key := range []string{"ADMIN_ADDR", "HTTP_ADDR", "GRPC_ADDR"} {
			full := cs.prefix + key
			if _, ok := settings[full]; !ok {
				continue
			}
			addr, ok := e[full]
			if !ok {
				t.Errorf("%s: %s not set: the default listens on loopback only, unreachable from outside the container", name, full)
				continue
			}
			if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" {
				t.Errorf("%s: %s=%s does not listen on every interface", name, full, addr)
			}
			if got, want := uint32(listenPort(t, addr)), uint32(listenPort(t, settings[full].Default)); got != want {
				t.Errorf("%s: %s port %d, want the default %d", name, full, got, want)
			}
			published := false
			for _, pc := range s.Ports {
				if pc.Target == uint32(listenPort(t, addr)) && pc.Published == strconv.Itoa(int(pc.Target)) {
					published = true
				}
			}
			if !published {
				t.Errorf("%s: port %d of %s is not published on the same host port", name, uint32(listenPort(t, addr)), full)
			}
		}
		// Longer than the graceful shutdown, or SIGKILL cuts it short.
		shutdown, err := time.ParseDuration(effective(settings, e, cs.prefix+"SHUTDOWN_TIMEOUT"))
		if err != nil {
			t.Fatal(err)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= shutdown {
			t.Errorf("%s: stop_grace_period %v must exceed SHUTDOWN_TIMEOUT %v", name, s.StopGracePeriod, shutdown)
		}
	}

	// Kafka: every client uses the broker's in-network listener, which the broker advertises.
	advertised := env(p.Services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
	for _, k := range []string{"COLLECTOR_KAFKA_BROKERS", "VALIDATOR_KAFKA_BROKERS", "LAKEWRITER_KAFKA_BROKERS", "CLICKSTREAM_KAFKA_BROKERS"} {
		v, ok := all[k]
		if !ok {
			t.Errorf("%s not set: the default 127.0.0.1:9092 is the container itself", k)
			continue
		}
		if !strings.Contains(advertised, "://"+v) {
			t.Errorf("%s=%s is not one of Kafka's advertised listeners %s", k, v, advertised)
		}
	}
	// Topics: the names the topics job creates are the ones the services use.
	pairs := [][2]string{
		{"CLICKSTREAM_TOPIC_PATTERN", "COLLECTOR_TOPIC_PATTERN"},
		{"COLLECTOR_TOPIC_PATTERN", "VALIDATOR_RAW_TOPIC_PATTERN"},
		{"VALIDATOR_DLQ_TOPIC", "LAKEWRITER_DLQ_TOPIC"},
		{"CLICKSTREAM_DLQ_TOPIC", "VALIDATOR_DLQ_TOPIC"},
	}
	for _, pair := range pairs {
		a, b := effective(settings, all, pair[0]), effective(settings, all, pair[1])
		if a != b || a == "" {
			t.Errorf("%s=%q but %s=%q: the topics would not match", pair[0], a, pair[1], b)
		}
	}
	// The services created topics themselves otherwise, with their own settings.
	for _, k := range []string{"COLLECTOR_CREATE_TOPICS", "VALIDATOR_CREATE_TOPICS"} {
		if all[k] != "false" {
			t.Errorf("%s should be false: the topics job creates the topics", k)
		}
	}
	// The lake: the lakewriter and the compactor see the same lake and metastore, which Trino
	// queries and the metastore treats as its external warehouse.
	for _, pair := range [][2]string{{"LAKEWRITER_LAKE_URL", "COMPACTOR_LAKE_URL"}, {"LAKEWRITER_LAKE_METASTORE_URI", "COMPACTOR_LAKE_METASTORE_URI"}, {"LAKEWRITER_LAKE_DATABASE", "COMPACTOR_LAKE_DATABASE"}} {
		if a, b := effective(settings, all, pair[0]), effective(settings, all, pair[1]); a != b {
			t.Errorf("%s=%q but %s=%q", pair[0], a, pair[1], b)
		}
	}
	catalogURI := versionIn(t, "deploy/compose/trino/catalog/hive.properties", `(?m)^hive\.metastore\.uri=(\S+)`)
	if catalogURI != all["LAKEWRITER_LAKE_METASTORE_URI"] {
		t.Errorf("Trino's catalog uses metastore %s, the lakewriter %s", catalogURI, all["LAKEWRITER_LAKE_METASTORE_URI"])
	}
	external := versionIn(t, "deploy/compose/hive-metastore/conf/hive-site.xml", `metastore\.warehouse\.external\.dir</name><value>([^<]+)<`)
	if external != all["LAKEWRITER_LAKE_URL"] {
		t.Errorf("the metastore's external warehouse is %s, the lake %s", external, all["LAKEWRITER_LAKE_URL"])
	}
}

// Every file or folder the compose file mounts or builds from is in the repository.
func TestComposeReferencedFilesExist(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s mounts %s writable: configuration is mounted read-only", name, v.Source)
			}
		}
		for _, f := range s.EnvFiles {
			if _, err := os.Stat(f.Path); err != nil {
				t.Errorf("%s env_file %s: %v", name, f.Path, err)
			}
		}
		if s.Build != nil {
			df := s.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s builds from %s: %v", name, df, err)
			}
		}
	}
}
