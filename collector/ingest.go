package collector

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
)

// identity is who sent a batch: the connection id and group headers as the client sent them.
type identity struct{ id, group string }

// outcome is how a batch ends: CODE_OK, or an error code with its reason. label, when set, is
// the requests_rejected_total reason.
type outcome struct {
	code   pb.Code
	reason string
	label  string
}

var ok = outcome{code: pb.Code_CODE_OK}

func (o outcome) success() bool { return o.code == pb.Code_CODE_OK }

func badRequest(label, format string, args ...any) outcome {
	return outcome{code: pb.Code_CODE_BAD_REQUEST, reason: fmt.Sprintf(format, args...), label: label}
}

func internalError(label, format string, args ...any) outcome {
	return outcome{code: pb.Code_CODE_INTERNAL_ERROR, reason: fmt.Sprintf(format, args...), label: label}
}

// response is the SendEventResponse for an outcome, correlated by req_guid.
func response(reqGUID string, o outcome) *pb.SendEventResponse {
	status := pb.Status_STATUS_SUCCESS
	if !o.success() {
		status = pb.Status_STATUS_ERROR
	}
	return &pb.SendEventResponse{
		Status: status, Code: o.code, SentTime: time.Now().Unix(), Reason: o.reason,
		Data: map[string]string{"req_guid": reqGUID},
	}
}

// eventType is what the collector needs per event type: where its events go and its counters.
type eventType struct {
	name     []byte // the label and event_type header of a known type
	topic    string
	received prometheus.Counter
	produced prometheus.Counter
	failed   prometheus.Counter
}

// typeTable is the routing of one schema version: every type's topic and counters. It is
// replaced whole when a version adds types, so the data path reads it without a lock.
type typeTable struct {
	version uint32
	byName  map[string]*eventType
}

// newEventType resolves the topic and counters of one type (labels are registry type names
// and "unknown": a bounded set).
func (c *Collector) newEventType(name string) *eventType {
	return &eventType{
		name: []byte(name), topic: kafka.RawTopic(c.cfg.TopicPattern, name),
		received: c.m.eventsReceived.WithLabelValues(name),
		produced: c.m.eventsProduced.WithLabelValues(name),
		failed:   c.m.eventsFailed.WithLabelValues(name),
	}
}

func (c *Collector) newTypeTable(reg *registry.Registry) *typeTable {
	t := &typeTable{version: reg.Version(), byName: map[string]*eventType{}}
	for _, name := range reg.Names() {
		t.byName[name] = c.newEventType(name)
	}
	return t
}

func (c *Collector) eventType(name string) *eventType {
	if et, ok := c.types.Load().byName[name]; ok {
		return et
	}
	return c.unknown
}

// check applies the per-batch limits that need no Kafka: sizes, counts and type syntax.
func (c *Collector) check(req *pb.SendEventRequest) (outcome, bool) {
	if len(req.GetReqGuid()) > maxReqGUIDBytes {
		return badRequest(reasonTooLarge, "req_guid is %d bytes, more than the limit of %d", len(req.GetReqGuid()), maxReqGUIDBytes), false
	}
	if ts := req.GetSentTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return badRequest(reasonDecode, "sent_time: %v", err), false
		}
	}
	events := req.GetEvents()
	if len(events) > c.cfg.MaxBatchEvents {
		return badRequest(reasonTooMany, "batch has %d events, more than the limit of %d", len(events), c.cfg.MaxBatchEvents), false
	}
	for i, e := range events {
		if _, known := c.types.Load().byName[e.GetType()]; known {
			// registry types are legal names; skip the regular expression
		} else if err := registry.ValidTypeName(e.GetType()); err != nil {
			t := e.GetType()
			if len(t) > 80 {
				t = t[:80] + "…"
			}
			return badRequest(reasonBadType, "events[%d]: event type %q is not a legal type name (must match ^[a-z][a-z0-9_]{0,62}$)", i, t), false
		}
		if n := len(e.GetEventBytes()); n > c.cfg.MaxEventBytes {
			return badRequest(reasonTooLarge, "events[%d] (type %s): event_bytes is %d bytes, more than the limit of %d", i, e.GetType(), n, c.cfg.MaxEventBytes), false
		}
	}
	return ok, true
}

// numHeaders is how many headers every record carries (the Kafka contract).
const numHeaders = 7

// submit hands the events of req (which passed check) to Kafka and calls done exactly once with the outcome:
// OK only once Kafka has acknowledged every event of the batch (or as soon as they are
// buffered, in fire-and-forget mode), else an error with its reason. While the in-flight budget
// is full, submit blocks the caller for at most InflightWait (or until stop closes): that is
// the backpressure on a WebSocket reader or an HTTP/gRPC handler. done may run on a franz-go
// goroutine and must not block.
func (c *Collector) submit(stop <-chan struct{}, id identity, req *pb.SendEventRequest, received time.Time, done func(outcome)) {
	events := req.GetEvents()
	if len(events) == 0 {
		done(ok)
		return
	}
	received = received.Truncate(time.Millisecond) // Kafka timestamps have milliseconds

	var key []byte // an empty id is a null key: spread, not all on one partition
	if id.id != "" {
		key = []byte(id.id)
	}
	guid, group := []byte(req.GetReqGuid()), []byte(id.group)
	var sent []byte
	if ts := req.GetSentTime(); ts != nil {
		sent = []byte(ts.AsTime().UTC().Format(time.RFC3339Nano))
	}
	recv := []byte(received.UTC().Format(time.RFC3339Nano))
	perRecord := int64(len(key)+len(guid)+len(group)+len(sent)+len(recv)) + recordOverhead
	cost := int64(0)
	for _, e := range events {
		cost += perRecord + int64(len(e.GetEventBytes())+len(e.GetType())+5)
	}
	if !c.budget.acquire(cost, c.cfg.InflightWait, stop) {
		select {
		case <-stop:
			if c.draining.Load() {
				done(internalError(reasonShuttingDown, "server is shutting down; retry"))
			} else {
				done(internalError(reasonOverloaded, "request cancelled while waiting for in-flight budget"))
			}
		default:
			done(internalError(reasonOverloaded, "overloaded: Kafka has not kept up for %s (in-flight budget of %d bytes is full); retry later", c.cfg.InflightWait, c.cfg.MaxInflightBytes))
		}
		return
	}

	n := len(events)
	b := &inflight{c: c, n: n, cost: cost, done: done}
	b.left.Store(int64(n))
	recs := make([]kgo.Record, n)
	hdrs := make([]kgo.RecordHeader, numHeaders*n)
	digits := len(strconv.Itoa(n - 1))
	idx := make([]byte, 0, n*digits)
	for i, e := range events {
		et := c.eventType(e.GetType())
		et.received.Inc()
		typ := et.name
		if et == c.unknown {
			typ = []byte(e.GetType())
		}
		start := len(idx)
		idx = strconv.AppendInt(idx, int64(i), 10)
		h := hdrs[numHeaders*i : numHeaders*(i+1) : numHeaders*(i+1)]
		h[0] = kgo.RecordHeader{Key: kafka.HeaderReqGUID, Value: guid}
		h[1] = kgo.RecordHeader{Key: kafka.HeaderEventIndex, Value: idx[start:len(idx):len(idx)]}
		h[2] = kgo.RecordHeader{Key: kafka.HeaderConnID, Value: key}
		h[3] = kgo.RecordHeader{Key: kafka.HeaderConnGroup, Value: group}
		h[4] = kgo.RecordHeader{Key: kafka.HeaderSentTime, Value: sent}
		h[5] = kgo.RecordHeader{Key: kafka.HeaderReceivedAt, Value: recv}
		h[6] = kgo.RecordHeader{Key: kafka.HeaderEventType, Value: typ}
		recs[i] = kgo.Record{Topic: et.topic, Key: key, Value: e.GetEventBytes(), Headers: h, Timestamp: received}
	}
	c.m.inflightBatches.Inc()
	if !c.cfg.FireAndForget {
		b.timer = time.AfterFunc(c.cfg.AckTimeout, b.expire)
	}
	for i := range recs {
		c.producer.Produce(c.produceCtx, &recs[i], b.promise)
	}
	if c.cfg.FireAndForget {
		b.finish(ok)
	}
}

// inflight tracks one batch from Produce to the last record's promise.
type inflight struct {
	c       *Collector
	n       int
	cost    int64
	done    func(outcome)
	timer   *time.Timer
	left    atomic.Int64
	failed  atomic.Int64
	first   atomic.Pointer[error]
	settled atomic.Bool
}

func (b *inflight) promise(r *kgo.Record, err error) {
	et := b.c.unknown
	if len(r.Headers) == numHeaders {
		if t, ok := b.c.types.Load().byName[string(r.Headers[6].Value)]; ok {
			et = t
		}
	}
	if err != nil {
		et.failed.Inc()
		b.failed.Add(1)
		wrapped := fmt.Errorf("produce %s: %w", r.Topic, err)
		b.first.CompareAndSwap(nil, &wrapped)
	} else {
		et.produced.Inc()
	}
	if b.left.Add(-1) > 0 {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.c.budget.release(b.cost)
	b.c.m.inflightBatches.Dec()
	if f := b.failed.Load(); f > 0 {
		b.finish(internalError("", "cannot publish events: %d of %d events failed: %v", f, b.n, *b.first.Load()))
		return
	}
	b.finish(ok)
}

// expire answers a batch that Kafka has not settled within AckTimeout. Its records stay in the
// producer (and in the budget) until franz-go settles them.
func (b *inflight) expire() {
	b.finish(internalError("", "cannot publish events: Kafka did not acknowledge %d of %d events within %s; retry",
		b.left.Load(), b.n, b.c.cfg.AckTimeout))
}

func (b *inflight) finish(o outcome) {
	if b.settled.CompareAndSwap(false, true) {
		b.done(o)
	}
}

// observe records an ack's metrics; every transport calls it once per batch.
func (c *Collector) observe(transport string, o outcome, received time.Time) {
	status := "success"
	if !o.success() {
		status = "error"
	}
	c.m.batchesAcked.WithLabelValues(transport, status).Inc()
	c.m.ackLatency.WithLabelValues(transport).Observe(time.Since(received).Seconds())
	if o.label != "" {
		c.m.rejected.WithLabelValues(o.label).Inc()
	}
}
