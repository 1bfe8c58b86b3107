package schemastore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/clickstream/clickstream/schemas/registry"
)

// metrics of a follower, under <namespace>_schema_*.
type metrics struct {
	version  prometheus.Gauge
	applied  prometheus.Counter
	rejected prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, namespace string) *metrics {
	m := &metrics{
		version: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "schema_version",
			Help: "Schema version in force (0: the built-in example schemas, nothing registered yet)."}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "schema_versions_applied_total",
			Help: "Schema versions read from the schema topic and put in force."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "schema_versions_rejected_total",
			Help: "Records of the schema topic ignored: undecodable, broken or incompatible with the version in force."}),
	}
	if reg != nil {
		reg.MustRegister(m.version, m.applied, m.rejected)
	}
	return m
}

// Follow reads topic to its end with a client built from opts (kafka.ClientOpts), puts the
// latest good version in force (the built-in example schemas when there is none), and keeps
// following the topic until ctx ends. The returned Live is ready to use; the follower's errors
// after the first load are logged and retried (franz-go retries fetches by itself).
func Follow(ctx context.Context, opts []kgo.Opt, topic string, log *slog.Logger, reg prometheus.Registerer, namespace string) (*Live, error) {
	cl, err := newReader(opts, topic)
	if err != nil {
		return nil, err
	}
	m := newMetrics(reg, namespace)
	h := &History{}
	if err := readExisting(ctx, cl, topic, func(r *kgo.Record) { h.applyLogged(r, log, m) }); err != nil {
		cl.Close()
		return nil, fmt.Errorf("read schema topic %s: %w", topic, err)
	}
	live := Static(registry.Default())
	if h.Latest != nil {
		live = Static(h.Latest)
	}
	m.version.Set(float64(live.Current().Version()))
	log.Info("schemas loaded", "topic", topic, "version", live.Current().Version(), "types", live.Current().String())
	go func() {
		defer cl.Close()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, kerr.UnknownTopicOrPartition) {
					log.Warn("schema topic fetch failed", "topic", t, "partition", p, "err", err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				if next := h.applyLogged(r, log, m); next != nil {
					live.Publish(next)
					m.version.Set(float64(next.Version()))
					log.Info("schemas changed", "topic", topic, "version", next.Version(), "types", next.String())
				}
			})
		}
	}()
	return live, nil
}

// applyLogged applies r; a refused record is logged and counted, and nil returned.
func (h *History) applyLogged(r *kgo.Record, log *slog.Logger, m *metrics) *registry.Registry {
	next, err := h.record(r)
	if err != nil {
		m.rejected.Inc()
		log.Error("schema version ignored; the version in force stays", "offset", r.Offset, "err", err)
		return nil
	}
	m.applied.Inc()
	return next
}

// Open returns given when it is set (a process that shares one follower between its services,
// or a test), else follows topic itself (Follow).
func Open(ctx context.Context, given *Live, opts []kgo.Opt, topic string, log *slog.Logger, reg prometheus.Registerer, namespace string) (*Live, error) {
	if given != nil {
		return given, nil
	}
	return Follow(ctx, opts, topic, log, reg, namespace)
}
