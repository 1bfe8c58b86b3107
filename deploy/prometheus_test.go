package deploy

import (
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // registers kubernetes_sd_configs
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// These tests run Prometheus's own code on the monitoring files, as `promtool check config` and
// `promtool check rules` would: its configuration loader, its rule-file parser (which parses every
// alert expression) and its PromQL parser for the dashboard's queries.

// relabelTarget applies a scrape config's relabel rules to a discovered target's labels the
// way Prometheus does; keep is false when the target is dropped.
func relabelTarget(target map[string]string, cfgs []*relabel.Config) (labels.Labels, bool) {
	b := labels.NewBuilder(labels.FromMap(target))
	keep := relabel.ProcessBuilder(b, cfgs...)
	return b.Labels(), keep
}

func loadPrometheusConfig(t *testing.T, name string) *config.Config {
	t.Helper()
	path := filepath.Join(monitoringDir, "prometheus", name)
	cfg, err := config.LoadFile(path, false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Prometheus refuses %s: %v", path, err)
	}
	return cfg
}

func TestPrometheusConfigsLoad(t *testing.T) {
	for _, name := range []string{"prometheus.yml", "prometheus-kubernetes.yml"} {
		cfg := loadPrometheusConfig(t, name)
		if len(cfg.ScrapeConfigs) == 0 {
			t.Errorf("%s: no scrape configs", name)
		}
	}
}

func TestAlertRulesParse(t *testing.T) {
	path := filepath.Join(monitoringDir, "prometheus", "alerts.yml")
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("Prometheus refuses %s: %v", path, err)
	}
	if groups == nil || len(groups.Groups) == 0 {
		t.Fatalf("%s: no rule groups", path)
	}
}

// grafanaVariables stand in for the variables Grafana substitutes before a query reaches
// Prometheus.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h",
	"${instance}", ".*", "$instance", ".*", "${service}", ".*", "$service", ".*",
)

func TestDashboardQueriesParse(t *testing.T) {
	d := readDashboard(t)
	p := parser.NewParser(parser.Options{})
	n := 0
	var walk func([]panel)
	walk = func(panels []panel) {
		for _, pn := range panels {
			for _, target := range pn.Targets {
				if target.Expr == "" {
					continue
				}
				n++
				expr := grafanaVariables.Replace(target.Expr)
				if left := regexp.MustCompile(`\$\w+`).FindString(expr); left != "" {
					t.Errorf("panel %q: unknown Grafana variable %s in %s", pn.Title, left, target.Expr)
					continue
				}
				if _, err := p.ParseExpr(expr); err != nil {
					t.Errorf("panel %q: PromQL does not parse: %v\n%s", pn.Title, err, target.Expr)
				}
			}
			walk(pn.Panels)
		}
	}
	walk(d.Panels)
	if n < 20 {
		t.Errorf("only %d queries in the dashboard", n)
	}
}
