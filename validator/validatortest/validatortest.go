// Package validatortest drives a running validator from the outside, through Kafka only: it
// writes raw records the way the collector does, reads the valid topics and the DLQ with
// read_committed, and checks that every raw record came out exactly once, in the right place,
// with its key, headers and timestamp. The validator's own tests use it against kfake; end-to-end
// tests can use it against a real broker.
package validatortest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
)

// Event is one raw record and the outcome the validator must give it.
type Event struct {
	// Record is the raw record. Produce fills in its partition and offset.
	Record *kgo.Record
	// Type is the client's event type (the event_type header).
	Type string
	// Valid says whether the event must reach its valid topic; else the DLQ.
	Valid bool
	// Kind and RuleIDs (sorted, distinct) are the expected refusal.
	Kind    clickstreamv1.FailureKind
	RuleIDs []string
}

// ID is the event's identity in every output: its batch's req_guid and its index in the batch.
func (e Event) ID() string {
	return header(e.Record.Headers, kafka.HeaderReqGUID) + "/" + header(e.Record.Headers, kafka.HeaderEventIndex)
}

// NewEvent builds a raw record as the collector writes it: on the type's raw topic (the
// catch-all when the registry does not know the type), keyed by the connection id, with the
// contract's headers and the receive time as timestamp. seq makes its req_guid unique.
func NewEvent(rawPattern string, seq int, typ string, value []byte, at time.Time) Event {
	topicType := typ
	if _, ok := registry.Default().Lookup(typ); !ok {
		topicType = kafka.UnknownType
	}
	conn := fmt.Sprintf("conn-%d", seq%7)
	at = at.Truncate(time.Millisecond) // Kafka timestamps are milliseconds
	return Event{Type: typ, Valid: true, Record: &kgo.Record{
		Topic:     kafka.RawTopic(rawPattern, topicType),
		Key:       []byte(conn),
		Value:     value,
		Timestamp: at,
		Headers: []kgo.RecordHeader{
			{Key: kafka.HeaderReqGUID, Value: []byte(fmt.Sprintf("req-%06d", seq/3))},
			{Key: kafka.HeaderEventIndex, Value: []byte(strconv.Itoa(seq % 3))},
			{Key: kafka.HeaderConnID, Value: []byte(conn)},
			{Key: kafka.HeaderConnGroup, Value: []byte("group-" + strconv.Itoa(seq%2))},
			{Key: kafka.HeaderSentTime, Value: []byte(at.Add(-time.Second).Format(time.RFC3339Nano))},
			{Key: kafka.HeaderReceivedAt, Value: []byte(at.Format(time.RFC3339Nano))},
			{Key: kafka.HeaderEventType, Value: []byte(typ)},
		},
	}}
}

// Mixed returns n events from first on: valid events of every example type interleaved with
// every invalid example (bad rules, undecodable bytes, an unknown type), in a fixed order.
func Mixed(rawPattern string, first, n int, base time.Time) []Event {
	invalids := samples.Invalids(base)
	cycle := len(samples.Types) + len(invalids)
	out := make([]Event, 0, n)
	for seq := first; seq < first+n; seq++ {
		at := base.Add(time.Duration(seq) * time.Millisecond)
		if j := seq % cycle; j < len(samples.Types) {
			typ := samples.Types[j]
			out = append(out, NewEvent(rawPattern, seq, typ, samples.Marshal(samples.Event(typ, seq, at)), at))
		} else {
			inv := invalids[j-len(samples.Types)]
			e := NewEvent(rawPattern, seq, inv.Type, inv.Bytes, at)
			e.Valid, e.Kind, e.RuleIDs = false, inv.Kind, inv.RuleIDs
			out = append(out, e)
		}
	}
	return out
}

// Produce writes the events' records with an idempotent producer, waits until Kafka has all of
// them, and records where each landed.
func Produce(ctx context.Context, brokers []string, events []Event) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(events))
	for i, e := range events {
		recs[i] = e.Record
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

// Outputs are the records the validator committed.
type Outputs struct {
	Valid []*kgo.Record // from the valid topics
	Dead  []*kgo.Record // from the DLQ
}

// Len is the number of output records.
func (o Outputs) Len() int { return len(o.Valid) + len(o.Dead) }

// ReadOutputs reads every valid topic and the DLQ from the start with read_committed, as the
// lakewriter does, until at least want records arrived and then nothing more for quiet (so
// that extra records, which would be duplicates, are seen too).
func ReadOutputs(ctx context.Context, brokers []string, dlqTopic string, want int, quiet time.Duration) (Outputs, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeRegex(), kgo.ConsumeTopics(kafka.ValidTopicRegex, "^"+regexp.QuoteMeta(dlqTopic)+"$"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MetadataMaxAge(time.Second), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return Outputs{}, err
	}
	defer cl.Close()
	var out Outputs
	for {
		wait := quiet
		if out.Len() < want {
			wait = time.Minute // the caller's ctx bounds the whole read
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("read outputs: %d of %d records: %w", out.Len(), want, err)
		}
		if errors.Is(pctx.Err(), context.DeadlineExceeded) && fs.NumRecords() == 0 && out.Len() >= want {
			return out, nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == dlqTopic {
				out.Dead = append(out.Dead, r)
			} else {
				out.Valid = append(out.Valid, r)
			}
		})
	}
}

// Verify checks that out holds every event exactly once and nothing else: valid events on their
// valid topic with the raw value, key, timestamp and headers plus schema=<message> and
// schema_version; refused events on the DLQ as one DeadLetter each, with the expected kind and
// rule ids, the raw bytes and source, and the raw key, headers and timestamp plus
// schema_version. It returns every problem found (at most
// 20 are listed).
func Verify(events []Event, out Outputs) error {
	var probs []string
	add := func(format string, args ...any) {
		if len(probs) < 20 {
			probs = append(probs, fmt.Sprintf(format, args...))
		} else if len(probs) == 20 {
			probs = append(probs, "…")
		}
	}
	byID := map[string]Event{}
	bySource := map[string]Event{}
	for _, e := range events {
		byID[e.ID()] = e
		bySource[source(e.Record.Topic, e.Record.Partition, e.Record.Offset)] = e
	}
	seen := map[string]string{} // event ID -> where it was seen
	note := func(id, where string) {
		if prev, dup := seen[id]; dup {
			add("event %s twice: %s and %s", id, prev, where)
		}
		seen[id] = where
	}
	for _, r := range out.Valid {
		where := source(r.Topic, r.Partition, r.Offset)
		id := header(r.Headers, kafka.HeaderReqGUID) + "/" + header(r.Headers, kafka.HeaderEventIndex)
		e, ok := byID[id]
		if !ok {
			add("%s: valid record %s not sent", where, id)
			continue
		}
		note(id, where)
		if !e.Valid {
			add("%s: invalid event %s (%s, want %v) on a valid topic", where, id, e.Type, e.Kind)
			continue
		}
		if want := kafka.ValidTopic(e.Type); r.Topic != want {
			add("%s: event %s on %s, want %s", where, id, r.Topic, want)
		}
		et, _ := registry.Default().Lookup(e.Type)
		wantHeaders := append(slices.Clone(e.Record.Headers), kgo.RecordHeader{Key: kafka.HeaderSchema, Value: []byte(et.Message.FullName())})
		sameRecord(add, where, id, r, e.Record, wantHeaders)
		if !bytes.Equal(r.Value, e.Record.Value) {
			add("%s: event %s value changed", where, id)
		}
	}
	for _, r := range out.Dead {
		where := source(r.Topic, r.Partition, r.Offset)
		dl := new(clickstreamv1.DeadLetter)
		if err := proto.Unmarshal(r.Value, dl); err != nil {
			add("%s: not a DeadLetter: %v", where, err)
			continue
		}
		e, ok := bySource[source(dl.SourceTopic, dl.SourcePartition, dl.SourceOffset)]
		if !ok {
			add("%s: dead letter of %s/%d/%d, which was not sent", where, dl.SourceTopic, dl.SourcePartition, dl.SourceOffset)
			continue
		}
		id := e.ID()
		note(id, where)
		if e.Valid {
			add("%s: valid event %s (%s) dead-lettered: %v %s %v", where, id, e.Type, dl.Kind, dl.Error, dl.Violations)
			continue
		}
		sameRecord(add, where, id, r, e.Record, e.Record.Headers)
		var rules []string
		for _, v := range dl.Violations {
			rules = append(rules, v.RuleId)
		}
		slices.Sort(rules)
		rules = slices.Compact(rules)
		if dl.Kind != e.Kind || !slices.Equal(rules, e.RuleIDs) {
			add("%s: event %s: %v %v, want %v %v", where, id, dl.Kind, rules, e.Kind, e.RuleIDs)
		}
		if dl.EventType != e.Type || !bytes.Equal(dl.EventBytes, e.Record.Value) {
			add("%s: event %s: dead letter type %q or bytes differ from the raw event", where, id, dl.EventType)
		}
		if !dl.ReceivedAt.AsTime().Equal(e.Record.Timestamp) || dl.FailedAt == nil || dl.ValidatorVersion == "" {
			add("%s: event %s: received_at %v (want %v), failed_at %v, version %q", where, id,
				dl.ReceivedAt.AsTime(), e.Record.Timestamp, dl.FailedAt, dl.ValidatorVersion)
		}
	}
	for _, e := range events {
		if _, ok := seen[e.ID()]; !ok {
			add("event %s (%s, valid %v) lost: in neither a valid topic nor the DLQ", e.ID(), e.Type, e.Valid)
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%d events, %d valid + %d dead-lettered out:\n%s", len(events), len(out.Valid), len(out.Dead),
		joinLines(probs))
}

// sameRecord compares got with the raw record: key, timestamp, and headers wantHeaders followed
// by the validator's schema_version (any version: it depends on the schema topic, not the event).
func sameRecord(add func(string, ...any), where, id string, got, raw *kgo.Record, wantHeaders []kgo.RecordHeader) {
	if !bytes.Equal(got.Key, raw.Key) {
		add("%s: event %s key %q, want %q", where, id, got.Key, raw.Key)
	}
	if !got.Timestamp.Equal(raw.Timestamp) {
		add("%s: event %s timestamp %v, want %v", where, id, got.Timestamp, raw.Timestamp)
	}
	hs := got.Headers
	if n := len(hs); n == 0 || hs[n-1].Key != kafka.HeaderSchemaVersion {
		add("%s: event %s: no %s header last: %v", where, id, kafka.HeaderSchemaVersion, hs)
	} else {
		if _, err := strconv.ParseUint(string(hs[n-1].Value), 10, 32); err != nil {
			add("%s: event %s: %s header %q is not a version", where, id, kafka.HeaderSchemaVersion, hs[n-1].Value)
		}
		hs = hs[:n-1]
	}
	if !slices.EqualFunc(hs, wantHeaders, func(a, b kgo.RecordHeader) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
	}) {
		add("%s: event %s headers %v, want %v", where, id, hs, wantHeaders)
	}
}

func source(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s/%d/%d", topic, partition, offset)
}

func header(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func joinLines(ss []string) string {
	var b bytes.Buffer
	for _, s := range ss {
		b.WriteString("  ")
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}
