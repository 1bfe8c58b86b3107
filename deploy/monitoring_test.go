package deploy

// Tests of deploy/monitoring: the Prometheus scrape configurations and alert rules, the Grafana
// provisioning and the dashboard. That every metric name they query is one the services really
// expose is checked by e2e/metrics_test.go, which runs the services (this module does not build
// them); here every name must at least belong to one of the four services.

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/discovery/kubernetes"
	"sigs.k8s.io/yaml"
)

var monitoringDir = filepath.Join(repoRoot, "deploy", "monitoring")

var services = []string{"collector", "validator", "lakewriter", "compactor"}

// metricRef matches the pipeline's metric names in an expression (kprom's included:
// clickstream_<service>_kafka_*).
var metricRef = regexp.MustCompile(`\bclickstream_[a-z0-9_]*[a-z0-9]`)

// servicePrefix is the name prefix of every metric a service exposes.
var servicePrefix = regexp.MustCompile(`^clickstream_(collector|validator|lakewriter|compactor)_[a-z0-9_]+$`)

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		} `json:"static_configs"`
		KubernetesSDConfigs []struct {
			Role string `json:"role"`
		} `json:"kubernetes_sd_configs"`
		RelabelConfigs []map[string]any `json:"relabel_configs"`
	} `json:"scrape_configs"`
}

type alertRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func TestPrometheusComposeTargets(t *testing.T) {
	settings := knownSettings(t)
	var cfg promConfig
	readYAML(t, filepath.Join(monitoringDir, "prometheus", "prometheus.yml"), &cfg)
	if cfg.Global.ScrapeInterval != "15s" {
		t.Errorf("scrape_interval = %q, want 15s", cfg.Global.ScrapeInterval)
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		if !slices.Contains(services, sc.JobName) {
			t.Errorf("job %s is not one of the services %v", sc.JobName, services)
			continue
		}
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %s; the admin servers serve /metrics", sc.JobName, sc.MetricsPath)
		}
		want := sc.JobName + ":" + defaultPort(t, settings, strings.ToUpper(sc.JobName)+"_ADMIN_ADDR")
		n := 0
		for _, st := range sc.StaticConfigs {
			if st.Labels["service"] != sc.JobName {
				t.Errorf("job %s: label service = %q", sc.JobName, st.Labels["service"])
			}
			for _, target := range st.Targets {
				n++
				if target != want {
					t.Errorf("job %s: target %s, want %s (compose service name and default admin port)", sc.JobName, target, want)
				}
			}
		}
		if n == 0 {
			t.Errorf("job %s has no target", sc.JobName)
		}
	}
	for _, s := range services {
		if !jobs[s] {
			t.Errorf("no scrape job for %s", s)
		}
	}
	checkRuleFiles(t, cfg.RuleFiles)
}

// checkRuleFiles checks that a configuration's rule files exist beside it (Prometheus resolves
// them relative to the configuration file; compose mounts the directory whole).
func checkRuleFiles(t *testing.T, files []string) {
	t.Helper()
	if len(files) == 0 {
		t.Error("no rule_files: alerts.yml is not loaded")
	}
	for _, f := range files {
		if filepath.IsAbs(f) {
			t.Errorf("rule file %s: use a path relative to the configuration", f)
			continue
		}
		if _, err := os.Stat(filepath.Join(monitoringDir, "prometheus", f)); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
}

func TestPrometheusKubernetes(t *testing.T) {
	var raw promConfig
	readYAML(t, filepath.Join(monitoringDir, "prometheus", "prometheus-kubernetes.yml"), &raw)
	if raw.Global.ScrapeInterval != "15s" {
		t.Errorf("scrape_interval = %q, want 15s", raw.Global.ScrapeInterval)
	}
	checkRuleFiles(t, raw.RuleFiles)
	// The relabeling runs through Prometheus's own loader and relabel code.
	cfg := loadPrometheusConfig(t, "prometheus-kubernetes.yml")
	var found bool
	for _, sc := range cfg.ScrapeConfigs {
		var pods bool
		for _, sd := range sc.ServiceDiscoveryConfigs {
			if k, ok := sd.(*kubernetes.SDConfig); ok {
				pods = k.Role == kubernetes.RolePod
			}
		}
		if !pods {
			continue
		}
		found = true
		// A pod as the Kubernetes manifests annotate it: the validator, admin port 9101, and a
		// container port Prometheus discovered first.
		pod := func(scrape, path string) map[string]string {
			return map[string]string{
				"__address__":      "10.1.2.3:8080",
				"__metrics_path__": "/metrics",
				"__meta_kubernetes_pod_annotation_prometheus_io_scrape": scrape,
				"__meta_kubernetes_pod_annotation_prometheus_io_port":   "9101",
				"__meta_kubernetes_pod_annotation_prometheus_io_path":   path,
				"__meta_kubernetes_pod_label_app_kubernetes_io_name":    "validator",
				"__meta_kubernetes_pod_phase":                           "Running",
				"__meta_kubernetes_namespace":                           "clickstream",
				"__meta_kubernetes_pod_name":                            "validator-0",
			}
		}
		got, keep := relabelTarget(pod("true", "/metrics"), sc.RelabelConfigs)
		if !keep {
			t.Fatalf("job %s drops an annotated pod", sc.JobName)
		}
		for name, want := range map[string]string{"__address__": "10.1.2.3:9101", "__metrics_path__": "/metrics", "service": "validator"} {
			if v := got.Get(name); v != want {
				t.Errorf("job %s: %s = %q, want %q (labels %v)", sc.JobName, name, v, want, got)
			}
		}
		if got, _ := relabelTarget(pod("true", "/admin/metrics"), sc.RelabelConfigs); got.Get("__metrics_path__") != "/admin/metrics" {
			t.Errorf("job %s: the path annotation is not used: %v", sc.JobName, got)
		}
		for _, scrape := range []string{"false", ""} {
			if _, keep := relabelTarget(pod(scrape, "/metrics"), sc.RelabelConfigs); keep {
				t.Errorf("job %s keeps pods with prometheus.io/scrape: %q", sc.JobName, scrape)
			}
		}
	}
	if !found {
		t.Error("no scrape job with kubernetes_sd_configs role pod")
	}
}

func TestAlertRules(t *testing.T) {
	var rules alertRules
	readYAML(t, filepath.Join(monitoringDir, "prometheus", "alerts.yml"), &rules)
	names := map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: rule without alert name or expr: %+v", g.Name, r)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			names[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: needs a severity label and a summary", r.Alert)
			}
			checkMetricNames(t, "alert "+r.Alert, r.Expr)
		}
	}
	if n < 5 {
		t.Errorf("%d alert rules", n)
	}
}

// checkMetricNames checks that expr names metrics and that each belongs to a service.
func checkMetricNames(t *testing.T, where, expr string) {
	t.Helper()
	for _, name := range metricRef.FindAllString(expr, -1) {
		if !servicePrefix.MatchString(name) {
			t.Errorf("%s: %s is not a metric of %v", where, name, services)
		}
	}
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Datasource *datasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of collapsed rows
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(monitoringDir, "grafana", "dashboards", "clickstream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return d
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]string{}
	exprs := ""
	queries := 0
	for _, p := range all {
		if prev, ok := ids[p.ID]; ok || p.ID <= 0 {
			t.Errorf("panel %q: id %d not unique and positive (also %q)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want uid prometheus", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q: target %s without expr", p.Title, q.RefID)
			}
			if refs[q.RefID] {
				t.Errorf("panel %q: refId %s twice", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if q.Datasource != nil && q.Datasource.UID != "prometheus" {
				t.Errorf("panel %q: target datasource %+v", p.Title, q.Datasource)
			}
			if len(metricRef.FindAllString(q.Expr, -1)) == 0 {
				t.Errorf("panel %q: %s queries no clickstream metric", p.Title, q.Expr)
			}
			checkMetricNames(t, "panel "+p.Title, q.Expr)
			exprs += q.Expr + "\n"
			queries++
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "prometheus") {
			t.Errorf("variable %s: datasource %+v", v.Name, v.Datasource)
		}
	}
	// The subjects, each fed by the metric the services expose for it.
	for subject, metric := range map[string]string{
		"ingestion rate":        "clickstream_collector_events_received_total",
		"batches by transport":  "clickstream_collector_batches_received_total",
		"ack latency":           "clickstream_collector_ack_latency_seconds_bucket",
		"rejections":            "clickstream_collector_requests_rejected_total",
		"validator outcomes":    "clickstream_validator_dead_lettered_total",
		"violations":            "clickstream_validator_violations_total",
		"transactions":          "clickstream_validator_transactions_aborted_total",
		"lake freshness":        "clickstream_lakewriter_visible_latency_seconds_bucket",
		"oldest uncommitted":    "clickstream_lakewriter_oldest_uncommitted_age_seconds",
		"files per partition":   "clickstream_compactor_data_files",
		"validator lag":         "clickstream_validator_lag_records",
		"lakewriter lag":        "clickstream_lakewriter_lag_records",
		"kafka client (kprom)":  "clickstream_collector_kafka_produce_bytes_total",
		"compactor scan health": "clickstream_compactor_last_scan_timestamp_seconds",
	} {
		if !regexp.MustCompile(`\b` + metric + `\b`).MatchString(exprs) {
			t.Errorf("no panel shows %s (%s)", subject, metric)
		}
	}
	t.Logf("%d panels, %d queries", len(all), queries)
}

func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string         `json:"name"`
			UID       string         `json:"uid"`
			Type      string         `json:"type"`
			Access    string         `json:"access"`
			URL       string         `json:"url"`
			IsDefault bool           `json:"isDefault"`
			Editable  bool           `json:"editable"`
			JSONData  map[string]any `json:"jsonData"`
		} `json:"datasources"`
	}
	readYAML(t, filepath.Join(monitoringDir, "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources: %+v", ds)
	}
	if d := ds.Datasources[0]; d.UID != "prometheus" || d.Type != "prometheus" || d.URL != "http://prometheus:9090" {
		t.Errorf("datasource %+v: want uid prometheus, type prometheus, url http://prometheus:9090", d)
	}

	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			OrgID                 int    `json:"orgId"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
	readYAML(t, filepath.Join(monitoringDir, "grafana", "provisioning", "dashboards", "clickstream.yml"), &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 {
		t.Fatalf("dashboard providers: %+v", prov)
	}
	const dashboards = "/var/lib/grafana/dashboards"
	if p := prov.Providers[0]; p.Type != "file" || p.Options.Path != dashboards {
		t.Errorf("provider %+v: want type file, path %s", p, dashboards)
	}

	// docker-compose.yml mounts these directories where the files above expect them.
	p := loadCompose(t)
	mounts := func(service string) map[string]string {
		s, ok := p.Services[service]
		if !ok {
			t.Fatalf("docker-compose.yml has no %s service", service)
		}
		out := map[string]string{}
		for _, v := range s.Volumes {
			rel, err := filepath.Rel(p.WorkingDir, v.Source)
			if err != nil {
				rel = v.Source
			}
			out[path.Clean(v.Target)] = filepath.ToSlash(rel)
		}
		return out
	}
	g := mounts("grafana")
	for target, want := range map[string]string{
		dashboards:                  "deploy/monitoring/grafana/dashboards",
		"/etc/grafana/provisioning": "deploy/monitoring/grafana/provisioning",
	} {
		if g[target] != want {
			t.Errorf("grafana mounts %q at %s, want %s", g[target], target, want)
		}
	}
	if pm := mounts("prometheus"); pm["/etc/prometheus"] != "deploy/monitoring/prometheus" {
		t.Errorf("prometheus mounts %q at /etc/prometheus, want deploy/monitoring/prometheus", pm["/etc/prometheus"])
	}
	if cmd := strings.Join(p.Services["prometheus"].Command, " "); strings.Contains(cmd, "--config.file") &&
		!strings.Contains(cmd, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %q does not load /etc/prometheus/prometheus.yml", cmd)
	}
	if d := readDashboard(t); d.UID == "" {
		t.Error("the provisioned dashboard has no uid")
	}
}
