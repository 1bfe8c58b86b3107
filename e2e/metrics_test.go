package e2e

// The metric names the monitoring files (deploy/monitoring) query must be names the services
// really expose. This runs the four services in process, each with its own registry as in its
// own binary, against kfake and a local lake, sends events through them and gathers the
// registries.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/clickstream/clickstream/collector"
	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/e2e/sender"
	"github.com/clickstream/clickstream/lakewriter"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/clickstream/clickstream/validator"
)

// metricName matches the pipeline's metric names (kprom's are clickstream_<service>_kafka_*).
var metricName = regexp.MustCompile(`\bclickstream_[a-z0-9_]*[a-z0-9]`)

// monitoringMetrics returns every metric name the dashboard and the alert rules refer to, each
// with the files that refer to it.
func monitoringMetrics(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(file, text string) {
		for _, n := range metricName.FindAllString(text, -1) {
			if !slices.Contains(out[n], file) {
				out[n] = append(out[n], file)
			}
		}
	}
	dir := filepath.Join(repoRoot(t), "deploy", "monitoring")
	raw, err := os.ReadFile(filepath.Join(dir, "grafana", "dashboards", "clickstream.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			add("clickstream.json", v)
		}
	}
	walk(dash)
	raw, err = os.ReadFile(filepath.Join(dir, "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			add("alerts.yml", line)
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d metric names found in the monitoring files: %v", len(out), out)
	}
	return out
}

// exposedFamilies gathers the registries: metric family name → type, for families with series.
func exposedFamilies(t *testing.T, regs map[string]*prometheus.Registry) map[string]dto.MetricType {
	t.Helper()
	out := map[string]dto.MetricType{}
	for name, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather %s: %v", name, err)
		}
		for _, mf := range mfs {
			if len(mf.GetMetric()) > 0 {
				out[mf.GetName()] = mf.GetType()
			}
		}
	}
	return out
}

// seriesFamily is the family a series name belongs to: itself, or the histogram or summary
// whose _bucket, _sum or _count series it is. "" when none of them is exposed.
func seriesFamily(families map[string]dto.MetricType, name string) string {
	if _, ok := families[name]; ok {
		return name
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch families[base] {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			return base
		case dto.MetricType_SUMMARY:
			if suffix != "_bucket" {
				return base
			}
		}
	}
	return ""
}

// declared reports whether a collector of the family name is registered in reg, with or without
// series (a vector whose labels no event has used yet, such as errors by step): registering
// another collector of the same name fails then.
func declared(reg *prometheus.Registry, name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && declared(reg, base) {
			return true
		}
	}
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe of the e2e metrics test"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

// rareSeries are metrics that are registered but get series only on failures or compactions,
// which this run does not cause; the monitoring files may query them (alerts, error panels).
var rareSeries = map[string]string{
	"clickstream_compactor_errors_total":               "a failed compaction step",
	"clickstream_compactor_partitions_compacted_total": "a compaction: partitions seal 2 h after their hour",
	"clickstream_lakewriter_records_dropped_total":     "an undecodable record on a valid topic",
	"clickstream_validator_broken_schema":              "a broken or missing schema",
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// pipeline is the four services running in process, each with its own registry.
type pipeline struct {
	httpAddr string
	regs     map[string]*prometheus.Registry
	stops    []func() // in pipeline order
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	lakeDir := t.TempDir()
	p := &pipeline{httpAddr: freeAddr(t), regs: map[string]*prometheus.Registry{}}
	settings := map[string]string{
		"COLLECTOR_KAFKA_BROKERS": brokers, "COLLECTOR_HTTP_ADDR": p.httpAddr, "COLLECTOR_GRPC_ADDR": "",
		"VALIDATOR_KAFKA_BROKERS": brokers, "VALIDATOR_INSTANCE_ID": "metrics-test",
		"LAKEWRITER_KAFKA_BROKERS": brokers, "LAKEWRITER_LAKE_URL": lakeDir, "LAKEWRITER_ROTATE_INTERVAL": "1s",
		"COMPACTOR_LAKE_URL": lakeDir, "COMPACTOR_INTERVAL": "500ms",
	}
	for _, prefix := range []string{"COLLECTOR_", "VALIDATOR_", "LAKEWRITER_", "COMPACTOR_"} {
		settings[prefix+"ADMIN_ADDR"] = "" // the test gathers the registries itself
	}
	lookup := func(name string) (string, bool) { v, ok := settings[name]; return v, ok }
	loaders := []struct {
		name string
		load func() (run.Unit, error)
	}{
		{"collector", func() (run.Unit, error) { return collector.Spec().Load(lookup) }},
		{"validator", func() (run.Unit, error) { return validator.Spec().Load(lookup) }},
		{"lakewriter", func() (run.Unit, error) { return lakewriter.Spec().Load(lookup) }},
		{"compactor", func() (run.Unit, error) { return compactor.Spec().Load(lookup) }},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, l := range loaders {
		u, err := l.load()
		if err != nil {
			t.Fatal(err)
		}
		reg := telemetry.NewRegistry()
		p.regs[l.name] = reg
		g := run.NewGroup(run.Deps{Log: log, Reg: reg, Health: telemetry.NewHealth()}, u)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		name := l.name
		p.stops = append(p.stops, func() {
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.stop()
		}
	})
	p.stops = append(p.stops, func() { stopped = true })
	return p
}

// stop stops the services front to back, as the all-in-one command does.
func (p *pipeline) stop() {
	for _, s := range p.stops {
		s()
	}
}

// sum adds up every series of a family in reg (sample counts of histograms).
func sum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

func TestMonitoringMetricsExist(t *testing.T) {
	want := monitoringMetrics(t)
	p := startPipeline(t)
	waitFor(t, time.Minute, "collector /ping", func() error {
		resp, err := http.Get("http://" + p.httpAddr + "/ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})

	// Valid events of every type and every invalid example, so that every table, the
	// dead-letter queue and the rule violations have series.
	at := time.Now().UTC()
	var events []sender.Event
	for _, typ := range samples.Types {
		for i := range 3 {
			events = append(events, sender.Event{Type: typ, Bytes: samples.Marshal(samples.Event(typ, i, at))})
		}
	}
	for _, inv := range samples.Invalids(at) {
		events = append(events, sender.Event{Type: inv.Type, Bytes: inv.Bytes})
	}
	ctx := context.Background()
	header := http.Header{"X-User-Id": {"metrics-test"}}
	for i := 0; i < len(events); i += 10 {
		b := sender.Batch{ReqGUID: fmt.Sprintf("metrics-%d", i/10), SentTime: time.Now(), Events: events[i:min(i+10, len(events))]}
		ack, err := sender.PostHTTP(ctx, "http://"+p.httpAddr+"/api/v1/events", header, b, i%20 == 10)
		if err != nil || !ack.OK() {
			t.Fatalf("batch %s: %+v, %v", b.ReqGUID, ack, err)
		}
	}
	waitFor(t, 2*time.Minute, "every event committed to the lake", func() error {
		if n := sum(t, p.regs["lakewriter"], "clickstream_lakewriter_rows_committed_total"); n < float64(len(events)) {
			return fmt.Errorf("%v rows committed of %d events", n, len(events))
		}
		return nil
	})
	waitFor(t, time.Minute, "a compactor scan that sees the lakewriter's files", func() error {
		if n := sum(t, p.regs["compactor"], "clickstream_compactor_data_files"); n == 0 {
			return fmt.Errorf("no data files counted yet")
		}
		return nil
	})

	// Gathered while running: the Kafka clients' metrics leave the registry when they close.
	families := exposedFamilies(t, p.regs)
	var missing, declaredOnly []string
	for name, files := range want {
		if seriesFamily(families, name) != "" {
			continue
		}
		isDeclared := false
		for _, reg := range p.regs {
			isDeclared = isDeclared || declared(reg, name)
		}
		if isDeclared && rareSeries[name] != "" {
			declaredOnly = append(declaredOnly, name)
			continue
		}
		if isDeclared {
			missing = append(missing, fmt.Sprintf("%s (in %s): registered, but without series after a normal run; "+
				"a panel on it stays empty (add it to rareSeries only if failures or compactions make it appear)", name, strings.Join(files, ", ")))
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (in %s)", name, strings.Join(files, ", ")))
	}
	p.stop()
	sort.Strings(missing)
	sort.Strings(declaredOnly)
	if len(declaredOnly) > 0 {
		t.Logf("registered, series only on failures or compactions (rareSeries): %s", strings.Join(declaredOnly, " "))
	}
	if len(missing) > 0 {
		t.Errorf("metrics the monitoring files query that no service exposes:\n%s", strings.Join(missing, "\n"))
	}
	t.Logf("%d metric names checked against %d exposed families", len(want), len(families))
}
