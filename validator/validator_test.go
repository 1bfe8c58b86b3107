package validator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/clickstream/clickstream/validator/validatortest"
)

const testPartitions = 3

var testBase = time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)

// contractTopics are the topics of the default registry plus the DLQ.
func contractTopics() []string {
	return kafka.ContractTopics(kafka.DefaultRawTopicPattern, kafka.DefaultDLQTopic, registry.Default().Names())
}

func startKafka(t *testing.T, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, topics...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func testConfig(brokers []string) Config {
	cfg := DefaultConfig()
	cfg.Telemetry.AdminAddr = ""
	cfg.Kafka.Brokers = brokers
	cfg.InstanceID = "test"
	cfg.CreateTopics = false
	cfg.SessionTimeout = time.Second
	cfg.MetadataMaxAge = 300 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.Producer.Linger = 0
	return cfg
}

type instance struct {
	v      *Validator
	reg    *prometheus.Registry
	health *telemetry.Health
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config, reg *registry.Registry) *instance {
	t.Helper()
	if reg == nil {
		reg = registry.Default()
	}
	return startLive(t, cfg, schemastore.Static(reg), nil)
}

// startLive runs a validator on live's schema versions; when seen is not nil, it records the
// messages the validator logs.
func startLive(t *testing.T, cfg Config, live *schemastore.Live, seen *logSeen) *instance {
	t.Helper()
	in := &instance{reg: prometheus.NewRegistry(), health: telemetry.NewHealth(), done: make(chan error, 1)}
	var h slog.Handler = slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})
	if seen != nil {
		h = seenHandler{Handler: h, seen: seen}
	}
	v, err := New(cfg, run.Deps{Log: slog.New(h), Reg: in.reg, Health: in.health, Schemas: live})
	if err != nil {
		t.Fatal(err)
	}
	in.v = v
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- v.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// logSeen is the set of messages logged, for tests that wait for a lifecycle event.
type logSeen struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (s *logSeen) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[msg]
}

// seenHandler logs through Handler and counts every message in seen.
type seenHandler struct {
	slog.Handler
	seen *logSeen
}

func (h seenHandler) Handle(ctx context.Context, r slog.Record) error {
	h.seen.mu.Lock()
	if h.seen.msgs == nil {
		h.seen.msgs = map[string]int{}
	}
	h.seen.msgs[r.Message]++
	h.seen.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h seenHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return seenHandler{Handler: h.Handler.WithAttrs(as), seen: h.seen}
}

func (h seenHandler) WithGroup(name string) slog.Handler {
	return seenHandler{Handler: h.Handler.WithGroup(name), seen: h.seen}
}

// stop shuts the instance down gracefully (once) and returns Run's error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	select {
	case err, ok := <-in.done:
		if ok {
			close(in.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("validator did not stop")
	}
	return nil
}

// wait returns Run's error once it stops on its own.
func (in *instance) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-in.done:
		close(in.done)
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("validator did not stop on its own")
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// metricSum is the sum of every series of the named metric whose labels include match.
func metricSum(t *testing.T, reg *prometheus.Registry, name string, match map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func produce(t *testing.T, c *kfake.Cluster, events []validatortest.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := validatortest.Produce(ctx, c.ListenAddrs(), events); err != nil {
		t.Fatal(err)
	}
}

func readOutputs(t *testing.T, brokers []string, want int) validatortest.Outputs {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := validatortest.ReadOutputs(ctx, brokers, kafka.DefaultDLQTopic, want, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func count(events []validatortest.Event) (valid, dead int) {
	for _, e := range events {
		if e.Valid {
			valid++
		} else {
			dead++
		}
	}
	return valid, dead
}

// TestLoop sends a mix of every example, valid and invalid, through one validator (with each
// decoder) and checks every output record, the metrics, and a graceful stop.
func TestLoop(t *testing.T) {
	for _, dec := range decoders {
		t.Run(dec, func(t *testing.T) { testLoop(t, dec) })
	}
}

func testLoop(t *testing.T, decoder string) {
	c := startKafka(t, contractTopics()...)
	events := validatortest.Mixed(kafka.DefaultRawTopicPattern, 0, 450, testBase)
	big := validatortest.NewEvent(kafka.DefaultRawTopicPattern, len(events), "page_view",
		samples.Marshal(samples.Event("page_view", 9, testBase)), testBase.Add(time.Hour))
	big.Record.Value = append(big.Record.Value, make([]byte, 3000)...)
	big.Valid, big.Kind = false, clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE
	events = append(events, big)
	produce(t, c, events)

	cfg := testConfig(c.ListenAddrs())
	cfg.MaxEventBytes = 2000
	cfg.MaxPollRecords = 100
	cfg.Decoder = decoder
	in := start(t, cfg, nil)
	out := readOutputs(t, c.ListenAddrs(), len(events))
	if err := validatortest.Verify(events, out); err != nil {
		t.Fatal(err)
	}

	// A second round on the running validator.
	more := validatortest.Mixed(kafka.DefaultRawTopicPattern, len(events), 150, testBase.Add(2*time.Hour))
	produce(t, c, more)
	events = append(events, more...)
	out = readOutputs(t, c.ListenAddrs(), len(events))
	if err := validatortest.Verify(events, out); err != nil {
		t.Fatal(err)
	}
	if ok, why := in.health.Ready(); !ok {
		t.Errorf("not ready while running: %v", why)
	}

	if err := in.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	valid, dead := count(events)
	received := metricSum(t, in.reg, "clickstream_validator_received_total", nil)
	gotValid := metricSum(t, in.reg, "clickstream_validator_valid_total", nil)
	gotDead := metricSum(t, in.reg, "clickstream_validator_dead_lettered_total", nil)
	if received != float64(len(events)) || gotValid != float64(valid) || gotDead != float64(dead) || received != gotValid+gotDead {
		t.Errorf("received %v valid %v dead %v, want %d = %d + %d", received, gotValid, gotDead, len(events), valid, dead)
	}
	for typ, want := range map[string]int{"click": 0, kafka.UnknownType: 0} {
		_ = want
		if metricSum(t, in.reg, "clickstream_validator_received_total", map[string]string{"type": typ}) == 0 {
			t.Errorf("no received events of type %s", typ)
		}
	}
	if n := metricSum(t, in.reg, "clickstream_validator_dead_lettered_total", map[string]string{"kind": "too_large"}); n != 1 {
		t.Errorf("too_large = %v, want 1", n)
	}
	if n := metricSum(t, in.reg, "clickstream_validator_violations_total", map[string]string{"rule_id": "purchase.items_currency"}); n == 0 {
		t.Error("no purchase.items_currency violations counted")
	}
	if n := metricSum(t, in.reg, "clickstream_validator_transactions_committed_total", nil); n == 0 {
		t.Error("no committed transactions counted")
	}
	if n := metricSum(t, in.reg, "clickstream_validator_transaction_commit_seconds", nil); n == 0 {
		t.Error("no commit latency observed")
	}
	if ok, _ := in.health.Ready(); ok {
		t.Error("still ready after stop")
	}
}

// TestNewRawTopicIsConsumed creates a raw topic while the validator runs: its events must come
// through without a restart.
func TestNewRawTopicIsConsumed(t *testing.T) {
	topics := []string{kafka.DefaultDLQTopic}
	for _, typ := range samples.Types {
		topics = append(topics, kafka.ValidTopic(typ))
	}
	c := startKafka(t, append(topics, kafka.RawTopic(kafka.DefaultRawTopicPattern, "click"))...)
	in := start(t, testConfig(c.ListenAddrs()), nil)
	var events []validatortest.Event
	for i := range 10 {
		events = append(events, validatortest.NewEvent(kafka.DefaultRawTopicPattern, i, "click",
			samples.Marshal(samples.Event("click", i, testBase)), testBase))
	}
	produce(t, c, events)
	if err := validatortest.Verify(events, readOutputs(t, c.ListenAddrs(), len(events))); err != nil {
		t.Fatal(err)
	}

	adm := kadm.NewClient(newClient(t, c))
	if _, err := adm.CreateTopic(context.Background(), 2, 1, nil, kafka.RawTopic(kafka.DefaultRawTopicPattern, "page_view")); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 20; i++ {
		events = append(events, validatortest.NewEvent(kafka.DefaultRawTopicPattern, i, "page_view",
			samples.Marshal(samples.Event("page_view", i, testBase)), testBase))
	}
	produce(t, c, events[10:])
	if err := validatortest.Verify(events, readOutputs(t, c.ListenAddrs(), len(events))); err != nil {
		t.Fatal(err)
	}
	_ = in
}

func newClient(t *testing.T, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// committedOffsets are the group's committed offsets of topic, by partition.
func committedOffsets(t *testing.T, c *kfake.Cluster, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(newClient(t, c))
	resp, err := adm.FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, o := range resp[topic] {
		out[p] = o.At
	}
	return out
}

// TestBrokenRuleStops feeds a rule that fails to evaluate on some data: the validator must stop
// with ErrBrokenSchema, set the gauge, turn readiness off, dead-letter nothing and commit
// nothing of the transaction holding the event.
func TestBrokenRuleStops(t *testing.T) {
	reg := testRegistry(t, "thing", "this.name == '' || int(this.name) > 0")
	raw := kafka.RawTopic(kafka.DefaultRawTopicPattern, "thing")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, raw, kafka.ValidTopic("thing"), kafka.DefaultDLQTopic),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var events []validatortest.Event
	for i, name := range []string{"1", "22", "abc", "333"} {
		e := validatortest.NewEvent(kafka.DefaultRawTopicPattern, i, "thing", thing(name), testBase)
		e.Record.Topic = raw
		events = append(events, e)
	}
	produce(t, c, events)

	in := start(t, testConfig(c.ListenAddrs()), reg)
	err = in.wait(t)
	var se *SchemaError
	if !errors.Is(err, ErrBrokenSchema) || !errors.As(err, &se) || se.Reason != ReasonBrokenRule || se.Type != "thing" {
		t.Fatalf("Run = %v, want a broken rule of thing", err)
	}
	if !strings.Contains(err.Error(), "runtime error") {
		t.Errorf("error does not say what broke: %v", err)
	}
	if g := metricSum(t, in.reg, "clickstream_validator_broken_schema", map[string]string{"type": "thing", "reason": ReasonBrokenRule}); g != 1 {
		t.Errorf("broken_schema gauge = %v, want 1", g)
	}
	if ok, why := in.health.Ready(); ok || !strings.Contains(strings.Join(why, ";"), "broken schema") {
		t.Errorf("readiness %v %v, want not ready: broken schema", ok, why)
	}
	if at, ok := committedOffsets(t, c, testConfig(nil).Group, raw)[0]; ok && at > events[2].Record.Offset {
		t.Errorf("committed offset %d: past the event that broke the rule (offset %d)", at, events[2].Record.Offset)
	}
	out, err := validatortest.ReadOutputs(context.Background(), c.ListenAddrs(), kafka.DefaultDLQTopic, 0, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Dead) != 0 || len(out.Valid) > 2 {
		t.Errorf("%d valid, %d dead-lettered out; want at most the 2 events before the broken one, none dead-lettered", len(out.Valid), len(out.Dead))
	}
}

// TestMissingSchemaStops: a raw topic of its own for a type the registry does not know means
// the validator runs with old schemas; when no newer version comes within SCHEMA_WAIT it must
// stop rather than dead-letter the events.
func TestMissingSchemaStops(t *testing.T) {
	raw := kafka.RawTopic(kafka.DefaultRawTopicPattern, "checkout_started")
	c := startKafka(t, append(contractTopics(), raw)...)
	e := validatortest.NewEvent(kafka.DefaultRawTopicPattern, 0, "checkout_started", []byte{0x0a, 0x01, 'x'}, testBase)
	e.Record.Topic = raw
	produce(t, c, []validatortest.Event{e})
	cfg := testConfig(c.ListenAddrs())
	cfg.SchemaWait = 300 * time.Millisecond
	in := start(t, cfg, nil)
	err := in.wait(t)
	var se *SchemaError
	if !errors.As(err, &se) || se.Reason != ReasonMissingSchema || se.Type != "checkout_started" {
		t.Fatalf("Run = %v, want a missing schema of checkout_started", err)
	}
	if g := metricSum(t, in.reg, "clickstream_validator_broken_schema", map[string]string{"type": "checkout_started", "reason": ReasonMissingSchema}); g != 1 {
		t.Errorf("broken_schema gauge = %v, want 1", g)
	}
	if n := metricSum(t, in.reg, "clickstream_validator_dead_lettered_total", nil); n != 0 {
		t.Errorf("%v events dead-lettered", n)
	}
	if n := metricSum(t, in.reg, "clickstream_validator_schema_waits_total", map[string]string{"outcome": waitNoVersion}); n != 1 {
		t.Errorf("schema_waits_total{outcome=%s} = %v, want 1", waitNoVersion, n)
	}
}

func TestBrokenRuleAtStartUp(t *testing.T) {
	reg := testRegistry(t, "thing", "this.name > 3")
	preg := prometheus.NewRegistry()
	health := telemetry.NewHealth()
	_, err := New(testConfig([]string{"127.0.0.1:1"}), run.Deps{Reg: preg, Health: health, Schemas: schemastore.Static(reg)})
	if !errors.Is(err, ErrBrokenSchema) {
		t.Fatalf("New = %v, want ErrBrokenSchema", err)
	}
	if g := metricSum(t, preg, "clickstream_validator_broken_schema", map[string]string{"type": "thing"}); g != 1 {
		t.Errorf("broken_schema gauge = %v, want 1", g)
	}
	if ok, _ := health.Ready(); ok {
		t.Error("ready with a broken schema")
	}
}

// TestRebalance runs two validators in one group: the second joins mid-stream and the first
// leaves mid-stream, so partitions move while transactions are open. Every event must still
// come out exactly once, and the two instances' received counters must add up to the events.
func TestRebalance(t *testing.T) {
	c := startKafka(t, contractTopics()...)
	events := validatortest.Mixed(kafka.DefaultRawTopicPattern, 0, 1500, testBase)
	produce(t, c, events)

	cfgA := testConfig(c.ListenAddrs())
	cfgA.InstanceID = "a"
	cfgA.MaxPollRecords = 10
	a := start(t, cfgA, nil)
	waitFor(t, "a to commit", func() bool {
		return metricSum(t, a.reg, "clickstream_validator_transactions_committed_total", nil) >= 5
	})
	cfgB := cfgA
	cfgB.InstanceID = "b"
	b := start(t, cfgB, nil)
	waitFor(t, "b to commit", func() bool {
		return metricSum(t, b.reg, "clickstream_validator_transactions_committed_total", nil) >= 3
	})
	if err := a.stop(t); err != nil {
		t.Fatalf("a: %v", err)
	}
	out := readOutputs(t, c.ListenAddrs(), len(events))
	if err := validatortest.Verify(events, out); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(t); err != nil {
		t.Fatalf("b: %v", err)
	}
	ra := metricSum(t, a.reg, "clickstream_validator_received_total", nil)
	rb := metricSum(t, b.reg, "clickstream_validator_received_total", nil)
	if ra+rb != float64(len(events)) {
		t.Errorf("received a %v + b %v = %v, want %d", ra, rb, ra+rb, len(events))
	}
	t.Logf("a received %v, b %v; aborted on rebalance: a %v, b %v", ra, rb,
		metricSum(t, a.reg, "clickstream_validator_transactions_aborted_total", map[string]string{"reason": abortRebalance}),
		metricSum(t, b.reg, "clickstream_validator_transactions_aborted_total", map[string]string{"reason": abortRebalance}))
}

// waitFor polls cond until it holds; the bound only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeadLetterCutToFitABatch(t *testing.T) {
	t.Parallel()
	v := &Validator{cfg: DefaultConfig()}
	v.cfg.Producer.BatchMaxBytes = 20000
	r := &kgo.Record{Key: []byte("conn-1"), Headers: []kgo.RecordHeader{{Key: kafka.HeaderReqGUID, Value: []byte("req")}}}
	for _, size := range []int{100, 5000, 50000} {
		dl := &clickstreamv1.DeadLetter{Kind: clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE, EventBytes: make([]byte, size), Error: "too large"}
		b := v.deadLetterValue(dl, r)
		limit := 20000 - recordSlack - len(r.Key) - len(kafka.HeaderReqGUID) - 3
		if len(b) > limit {
			t.Errorf("%d event bytes: dead letter of %d bytes, over %d", size, len(b), limit)
		}
		got := new(clickstreamv1.DeadLetter)
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		cut := len(got.EventBytes) < size
		if cut != (size == 50000) || cut != strings.Contains(got.Error, "cut to their first") {
			t.Errorf("%d event bytes: kept %d, error %q", size, len(got.EventBytes), got.Error)
		}
	}
}

// TestProduceErrorsStop: when a valid topic is missing, the transactions abort (nothing is
// committed) and after a few in a row the validator stops and says why.
func TestProduceErrorsStop(t *testing.T) {
	raw := kafka.RawTopic(kafka.DefaultRawTopicPattern, "click")
	c := startKafka(t, raw, kafka.DefaultDLQTopic) // no clickstream-click-valid
	produce(t, c, []validatortest.Event{validatortest.NewEvent(kafka.DefaultRawTopicPattern, 0, "click",
		samples.Marshal(samples.Event("click", 0, testBase)), testBase)})
	cfg := testConfig(c.ListenAddrs())
	cfg.TransactionTimeout = time.Second
	in := start(t, cfg, nil)
	err := in.wait(t)
	if err == nil || !strings.Contains(err.Error(), "aborted on produce errors") {
		t.Fatalf("Run = %v, want it to stop on produce errors to %s", err, kafka.ValidTopic("click"))
	}
	if n := metricSum(t, in.reg, "clickstream_validator_transactions_aborted_total", map[string]string{"reason": abortProduce}); n != maxProduceAborts {
		t.Errorf("%v produce aborts, want %d", n, maxProduceAborts)
	}
	if n := metricSum(t, in.reg, "clickstream_validator_received_total", nil); n != 0 {
		t.Errorf("%v events counted as received", n)
	}
	if at, ok := committedOffsets(t, c, testConfig(nil).Group, raw)[0]; ok && at > 0 {
		t.Errorf("offset %d committed", at)
	}
}

// TestDeadLetterOfInvalidUTF8Type: an event_type header that is not UTF-8 (client input the
// collector passes on) must still give a dead letter that carries the event's bytes, with the
// type stored escaped; protobuf refuses to encode invalid UTF-8 in a string field.
func TestDeadLetterOfInvalidUTF8Type(t *testing.T) {
	topics := []string{kafka.DefaultDLQTopic, kafka.RawTopic(kafka.DefaultRawTopicPattern, kafka.UnknownType)}
	for _, typ := range samples.Types {
		topics = append(topics, kafka.ValidTopic(typ))
	}
	c := startKafka(t, topics...)
	start(t, testConfig(c.ListenAddrs()), nil)
	value := []byte("raw \xff bytes of the event")
	ev := validatortest.NewEvent(kafka.DefaultRawTopicPattern, 1, "bad\xfe\xfftype", value, testBase)
	produce(t, c, []validatortest.Event{ev})
	out := readOutputs(t, c.ListenAddrs(), 1)
	if len(out.Dead) != 1 || len(out.Valid) != 0 {
		t.Fatalf("%d dead letters, %d valid records; want 1 dead letter", len(out.Dead), len(out.Valid))
	}
	var dl clickstreamv1.DeadLetter
	if err := proto.Unmarshal(out.Dead[0].Value, &dl); err != nil {
		t.Fatalf("the dead letter does not decode: %v", err)
	}
	if !bytes.Equal(dl.GetEventBytes(), value) {
		t.Errorf("event bytes %q, want the raw bytes %q", dl.GetEventBytes(), value)
	}
	if want := `bad\xfe\xfftype`; dl.GetEventType() != want || dl.GetKind() != clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE {
		t.Errorf("event_type %q kind %v, want %q UNKNOWN_TYPE", dl.GetEventType(), dl.GetKind(), want)
	}
	if !strings.Contains(dl.GetError(), `bad\xfe\xfftype`) {
		t.Errorf("error %q does not name the escaped type", dl.GetError())
	}
}

func TestEscapeUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"page_view":        "page_view",
		"é ok":             "é ok",
		"a\xffb":           `a\xffb`,
		`lit\x41` + "\xc3": `lit\\x41\xc3`, // a literal \x is escaped too, so the two stay apart
	} {
		if got := escapeUTF8(in); got != want {
			t.Errorf("escapeUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}
