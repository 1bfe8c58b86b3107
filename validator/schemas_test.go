package validator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/validator/validatortest"
)

// thingVersion is schema version version as a push would bring it: the example schemas plus,
// for each type in rules, a Thing message (thingFile) with that CEL rule, none of them linked
// into the binary.
func thingVersion(t testing.TB, version uint32, rules map[string]string) *registry.Registry {
	t.Helper()
	set := registry.DefaultDescriptorSet()
	for typ, expr := range rules {
		set.File = append(set.File, thingFile(typ, expr))
	}
	reg, err := registry.FromDescriptorSet(set, version)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// thingEvents are raw records of typ on its own raw topic, one per name, from seq on.
func thingEvents(typ string, seq int, names ...string) []validatortest.Event {
	var events []validatortest.Event
	for i, name := range names {
		e := validatortest.NewEvent(kafka.DefaultRawTopicPattern, seq+i, typ, thing(name), testBase.Add(time.Duration(i)*time.Second))
		e.Record.Topic = kafka.RawTopic(kafka.DefaultRawTopicPattern, typ)
		events = append(events, e)
	}
	return events
}

// wantHeader fails unless r has header key = value.
func wantHeader(t *testing.T, r *kgo.Record, key, value string) {
	t.Helper()
	if got := header(r.Headers, key); got != value {
		t.Errorf("%s/%d/%d: header %s = %q, want %q", r.Topic, r.Partition, r.Offset, key, got, value)
	}
}

func stillRunning(t *testing.T, in *instance) {
	t.Helper()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup's stop
		t.Fatalf("validator stopped: %v", err)
	default:
	}
}

// TestNewTypeWaitsForItsVersion: a push created a new type's raw topic and the collector
// already wrote events to it, but this validator has not read the version yet. It must wait for
// the version instead of stopping on a missing schema, then judge the events with it: they end
// in the new valid topic (created by the validator), without a restart.
func TestNewTypeWaitsForItsVersion(t *testing.T) {
	raw := kafka.RawTopic(kafka.DefaultRawTopicPattern, "checkout")
	c := startKafka(t, append(contractTopics(), raw)...)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("cart-%d", i))
	}
	events := thingEvents("checkout", 0, names...)
	produce(t, c, events)

	cfg := testConfig(c.ListenAddrs())
	cfg.CreateTopics = true
	cfg.SchemaWait = time.Minute
	live := schemastore.Static(registry.Default())
	seen := &logSeen{}
	in := startLive(t, cfg, live, seen)
	waitFor(t, "the validator to wait for a schema version", func() bool {
		return seen.count("event type without schema on its own raw topic: waiting for a newer schema version") > 0
	})
	live.Publish(thingVersion(t, 2, map[string]string{"checkout": "this.name != ''"}))

	out := readOutputs(t, c.ListenAddrs(), len(events))
	if len(out.Dead) != 0 || len(out.Valid) != len(events) {
		t.Fatalf("%d valid, %d dead-lettered; want %d valid", len(out.Valid), len(out.Dead), len(events))
	}
	for _, r := range out.Valid {
		if r.Topic != kafka.ValidTopic("checkout") {
			t.Errorf("record on %s, want %s", r.Topic, kafka.ValidTopic("checkout"))
		}
		wantHeader(t, r, kafka.HeaderSchema, "test.v1.checkout.Thing")
		wantHeader(t, r, kafka.HeaderSchemaVersion, "2")
	}
	stillRunning(t, in)
	waitFor(t, "the valid events counted", func() bool {
		return metricSum(t, in.reg, "clickstream_validator_valid_total", map[string]string{"type": "checkout"}) == float64(len(events))
	})
	if n := metricSum(t, in.reg, "clickstream_validator_schema_waits_total", map[string]string{"outcome": waitNewVersion}); n != 1 {
		t.Errorf("schema_waits_total{outcome=%s} = %v, want 1", waitNewVersion, n)
	}
	if n := metricSum(t, in.reg, "clickstream_validator_broken_schema", nil); n != 0 {
		t.Errorf("broken_schema = %v", n)
	}
}

// TestSchemaVersionsApplyLive follows versions while running: one that adds a type gets the
// type's topics and consumes its raw topic at once (METADATA_MAX_AGE is a minute here, so only
// the forced metadata refresh finds it); one whose rules do not compile is refused, counted, and
// the version in force keeps judging. Every output carries the version that judged it.
func TestSchemaVersionsApplyLive(t *testing.T) {
	c := startKafka(t, contractTopics()...)
	cfg := testConfig(c.ListenAddrs())
	cfg.CreateTopics = true
	cfg.MetadataMaxAge = time.Minute
	v1 := map[string]string{"refund": "this.name != 'bad'"}
	live := schemastore.Static(thingVersion(t, 1, v1))
	in := startLive(t, cfg, live, nil)
	waitFor(t, "the validator ready", func() bool { ok, _ := in.health.Ready(); return ok })

	events := thingEvents("refund", 0, "r1", "bad")
	events[1].Valid, events[1].Kind, events[1].RuleIDs = false, clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED, []string{"thing.rule"}
	produce(t, c, events)
	out := readOutputs(t, c.ListenAddrs(), len(events))
	if len(out.Valid) != 1 || len(out.Dead) != 1 {
		t.Fatalf("version 1: %d valid, %d dead-lettered; want 1 and 1", len(out.Valid), len(out.Dead))
	}
	wantHeader(t, out.Valid[0], kafka.HeaderSchemaVersion, "1")
	wantHeader(t, out.Dead[0], kafka.HeaderSchemaVersion, "1")

	v2 := map[string]string{"refund": "this.name != 'bad'", "voucher": "this.name.size() < 10"}
	live.Publish(thingVersion(t, 2, v2))
	waitFor(t, "version 2 in force", func() bool { return in.v.judge.Load().version == 2 })
	adm := kadm.NewClient(newClient(t, c))
	topics, err := adm.ListTopics(context.Background(), kafka.RawTopic(kafka.DefaultRawTopicPattern, "voucher"), kafka.ValidTopic("voucher"))
	if err != nil || topics.Error() != nil || len(topics) != 2 {
		t.Fatalf("topics of the new type: %v %v", topics, err)
	}
	more := thingEvents("voucher", len(events), "v1", "v2", "a voucher name too long")
	more[2].Valid, more[2].Kind, more[2].RuleIDs = false, clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED, []string{"thing.rule"}
	produce(t, c, more)
	out = readOutputs(t, c.ListenAddrs(), len(events)+len(more))
	if len(out.Valid) != 3 || len(out.Dead) != 2 {
		t.Fatalf("version 2: %d valid, %d dead-lettered; want 3 and 2", len(out.Valid), len(out.Dead))
	}
	for _, r := range append(out.Valid, out.Dead...) {
		if r.Topic == kafka.ValidTopic("voucher") || r.Topic == kafka.DefaultDLQTopic && deadLetterOf(t, r).EventType == "voucher" {
			wantHeader(t, r, kafka.HeaderSchemaVersion, "2")
		}
	}

	// Version 3's new rule does not compile: refused, counted; version 2 stays in force.
	v3 := map[string]string{"refund": "this.name != 'bad'", "voucher": "this.name.size() < 10", "gift": "this.name > 3"}
	live.Publish(thingVersion(t, 3, v3))
	waitFor(t, "the refused version counted", func() bool {
		return metricSum(t, in.reg, "clickstream_validator_schema_checker_failures_total", nil) == 1
	})
	if v := in.v.judge.Load().version; v != 2 {
		t.Fatalf("version %d in force after a refused version 3, want 2", v)
	}
	last := thingEvents("voucher", len(events)+len(more), "v3")
	produce(t, c, last)
	out = readOutputs(t, c.ListenAddrs(), len(events)+len(more)+len(last))
	for _, r := range out.Valid {
		if header(r.Headers, kafka.HeaderReqGUID)+"/"+header(r.Headers, kafka.HeaderEventIndex) == last[0].ID() {
			wantHeader(t, r, kafka.HeaderSchemaVersion, "2")
		}
	}
	if len(out.Valid) != 4 {
		t.Errorf("%d valid events, want 4", len(out.Valid))
	}
	stillRunning(t, in)
	if ok, why := in.health.Ready(); !ok {
		t.Errorf("not ready after a refused version: %v", why)
	}
}

func deadLetterOf(t *testing.T, r *kgo.Record) *clickstreamv1.DeadLetter {
	t.Helper()
	dl := new(clickstreamv1.DeadLetter)
	if err := proto.Unmarshal(r.Value, dl); err != nil {
		t.Fatal(err)
	}
	return dl
}
