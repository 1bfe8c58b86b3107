package schemastore_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/descriptorpb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/registry/registrytest"
	"github.com/clickstream/clickstream/services/schemastore"
)

const topic = schemastore.DefaultTopic

func cluster(t *testing.T) (*kgo.Client, []kgo.Opt) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.FetchMaxWait(100 * time.Millisecond)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, opts
}

var checkout = registrytest.NewType{Type: "checkout_started", Message: "CheckoutStarted",
	Fields: []registrytest.Field{{Name: "cart_id", Number: 1, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING}}}

func version(set *descriptorpb.FileDescriptorSet, source string) *clickstreamv1.SchemaVersion {
	return &clickstreamv1.SchemaVersion{Files: set, Source: source}
}

func TestPushLoadFollow(t *testing.T) {
	ctx := context.Background()
	cl, opts := cluster(t)

	// Nothing pushed: an empty history, and a follower on the built-in examples.
	h, err := schemastore.Load(ctx, opts, topic)
	if err != nil || len(h.Versions) != 0 || h.Next() != 1 {
		t.Fatalf("empty topic: %+v, %v", h, err)
	}
	reg := prometheus.NewRegistry()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	live, err := schemastore.Follow(fctx, opts, topic, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	if live.Current() != registry.Default() {
		t.Fatalf("with nothing pushed the follower must run the built-in examples, got version %d", live.Current().Version())
	}
	var seen []uint32
	live.Subscribe(fctx, func(r *registry.Registry) { seen = append(seen, r.Version()) })

	// Version 1: the examples; pushing them again appends nothing.
	r1, pushed, err := schemastore.Push(ctx, cl, opts, topic, -1, version(registry.DefaultDescriptorSet(), "built-in"), nil)
	if err != nil || !pushed || r1.Version() != 1 {
		t.Fatalf("first push: version %v pushed %v err %v", r1, pushed, err)
	}
	if _, pushed, err := schemastore.Push(ctx, cl, opts, topic, -1, version(registry.DefaultDescriptorSet(), "again"), nil); err != nil || pushed {
		t.Fatalf("an unchanged set must not be pushed: pushed %v err %v", pushed, err)
	}
	// Version 2 adds a type; prepare sees it before the append.
	var prepared []string
	set2 := registrytest.ExamplesPlus(t, 0, checkout).DescriptorSet()
	r2, pushed, err := schemastore.Push(ctx, cl, opts, topic, -1, version(set2, "dir"), func(r *registry.Registry) error {
		prepared = r.Names()
		return nil
	})
	if err != nil || !pushed || r2.Version() != 2 || len(prepared) != 6 {
		t.Fatalf("second push: %v pushed %v err %v prepared %v", r2, pushed, err, prepared)
	}

	// Garbage and a stale version on the topic are ignored: the last good version stays.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("x"), Value: []byte("not a schema version")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := schemastore.Append(ctx, cl, topic, &clickstreamv1.SchemaVersion{Version: 2, Files: registry.DefaultDescriptorSet()}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the follower on version 2 with 2 rejected records", func() bool {
		return live.Current().Version() == 2 && metricValue(t, reg, "test_schema_versions_rejected_total") == 2
	})
	if _, ok := live.Current().Lookup("checkout_started"); !ok {
		t.Fatal("version 2 lacks the new type")
	}
	if want := []uint32{1, 2}; len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("subscriber saw %v, want %v", seen, want)
	}
	r, err := live.WaitFor(ctx, 2)
	if err != nil || r.Version() != 2 {
		t.Fatalf("WaitFor(2) = %v, %v", r, err)
	}

	// A later Load (a push, a restarted service) sees the same history.
	h, err = schemastore.Load(ctx, opts, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Versions) != 2 || len(h.Rejected) != 2 || h.Next() != 3 || h.Latest.Version() != 2 {
		t.Fatalf("history: %d versions, %d rejected, next %d", len(h.Versions), len(h.Rejected), h.Next())
	}
	// A restarted follower starts from the latest good version.
	again, err := schemastore.Follow(fctx, opts, topic, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, "test")
	if err != nil || again.Current().Version() != 2 {
		t.Fatalf("restarted follower: %v, %v", again.Current(), err)
	}
}

func TestWaitForHonoursContext(t *testing.T) {
	live := schemastore.Static(registry.Default())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := live.WaitFor(ctx, 1); err == nil {
		t.Fatal("WaitFor a version never published returned without error")
	}
}

// metricValue is the value of an unlabelled counter or gauge of reg; -1 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return -1
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFollowerGaugeIsTheVersionInForce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, opts := cluster(t)
	if _, _, err := schemastore.Push(ctx, cl, opts, topic, -1, version(registry.DefaultDescriptorSet(), "built-in"), nil); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := schemastore.Follow(ctx, opts, topic, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, "test"); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, "test_schema_version"); v != 1 {
		t.Fatalf("schema_version gauge = %v, want 1", v)
	}
}

func TestSubscriptionEndsWithItsContext(t *testing.T) {
	live := schemastore.Static(registry.Default())
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	live.Subscribe(ctx, func(*registry.Registry) { calls++ })
	live.Publish(registrytest.ExamplesPlus(t, 1))
	cancel()
	live.Publish(registrytest.ExamplesPlus(t, 2))
	if calls != 1 {
		t.Fatalf("subscriber called %d times, want once: not after its context ended", calls)
	}
}
