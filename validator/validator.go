// Package validator checks raw events against their protovalidate rules and moves each, exactly once, to its valid topic or the dead-letter queue.
//
// One loop polls the raw topics, judges every record (Checker.Check), produces it to its valid
// topic or as a clickstream.v1.DeadLetter to the DLQ, and commits the consumed offsets in the
// same Kafka transaction (kgo.GroupTransactSession). Readers of the valid topics and the DLQ must
// read with isolation.level=read_committed; they then see every raw record exactly once, in one
// of the two, whatever crashes, rebalances or aborts happened on the way.
package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// healthCheck is the validator's readiness check.
const healthCheck = "validator"

// maxProduceAborts is how many transactions in a row may abort on produce errors before the
// validator gives up (and its supervisor restarts it) rather than retry forever.
const maxProduceAborts = 5

// Validator is one running validator.
type Validator struct {
	cfg     Config
	log     *slog.Logger
	reg     prometheus.Registerer
	health  *telemetry.Health
	m       *metrics
	rawRe   *regexp.Regexp
	schemas *schemastore.Live // given by the composition root, or followed in Run

	// judge is the schema version in force; swapped whole by apply, read lock-free per poll.
	judge         atomic.Pointer[judge]
	applyMu       sync.Mutex // serialises apply
	failed        error      // the last version whose Checker could not be built (guarded by applyMu)
	failedVersion uint32

	// Owned by the Run goroutine.
	client     *kgo.Client       // the transactional session's client
	topicTypes map[string]string // raw topic -> captured type
	tally      *tally
	produceErr error // why the last transaction aborted on produce errors

	mu  sync.Mutex
	lag map[string]map[int32]int64 // raw topic -> partition -> records behind
}

// New checks cfg and builds the validator; nothing runs until Run. The schemas come from
// deps.Schemas (then every type's decoder and rules are compiled here, and a broken rule is an
// error, with the broken_schema metric set) or, when it is nil, from the schema topic that Run
// follows (SCHEMAS_TOPIC).
func New(cfg Config, deps run.Deps) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Validator{
		cfg:        cfg,
		log:        deps.Log,
		health:     deps.Health,
		schemas:    deps.Schemas,
		rawRe:      regexp.MustCompile(rawTopicRegex(cfg.RawTopicPattern)),
		topicTypes: map[string]string{},
		tally:      newTally(),
		lag:        map[string]map[int32]int64{},
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if deps.Reg != nil {
		v.reg = deps.Reg
	} else {
		v.reg = prometheus.NewRegistry()
	}
	if v.health == nil {
		v.health = telemetry.NewHealth()
	}
	v.health.Set(healthCheck, "starting")
	m, err := newMetrics(v.reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	v.m = m
	if v.schemas != nil {
		if err := v.apply(context.Background(), nil, v.schemas.Current()); err != nil {
			v.schemaBroken(err)
			return nil, err
		}
	}
	return v, nil
}

// Run consumes, judges, produces and commits until ctx is cancelled, then finishes the current
// transaction and leaves the group. It returns an error wrapping ErrBrokenSchema when an event
// type's schema is broken or missing; nothing of that transaction is committed.
func (v *Validator) Run(ctx context.Context) error {
	// Cancelled when Run returns, so the schema follower and subscription stop with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess, err := kgo.NewGroupTransactSession(v.clientOpts()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer sess.Close()
	v.client = sess.Client()
	if err := v.start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		if !errors.Is(err, ErrBrokenSchema) { // schemaBroken said why
			v.health.Set(healthCheck, err.Error())
		}
		return err
	}
	j := v.judge.Load()
	v.health.Set(healthCheck, "")
	v.log.Info("started", "raw_topics", v.rawRe.String(), "group", v.cfg.Group,
		"transactional_id", v.cfg.transactionalID(), "decoder", v.cfg.Decoder, "version", j.checker.version,
		"schema_version", j.version, "types", strings.Join(slices.Sorted(maps.Keys(j.validTopics)), ","))

	produceAborts := 0
	for ctx.Err() == nil {
		fetches := sess.PollRecords(ctx, v.cfg.MaxPollRecords)
		if fetches.IsClientClosed() {
			return errors.New("kafka client closed")
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				v.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		j := v.awaitSchemas(ctx, fetches)
		if ctx.Err() != nil {
			break // stopped while waiting for schemas: the poll is not committed, nothing is lost
		}
		// The transaction runs to its end even when ctx is cancelled meanwhile: shutting down
		// commits the records already polled rather than throwing the work away.
		reason, err := v.transact(context.WithoutCancel(ctx), sess, fetches, j)
		if err != nil {
			v.health.Set(healthCheck, err.Error())
			return err
		}
		if reason == abortProduce {
			if produceAborts++; produceAborts >= maxProduceAborts {
				err := fmt.Errorf("%d transactions in a row aborted on produce errors, the last: %w", produceAborts, v.produceErr)
				v.health.Set(healthCheck, err.Error())
				return err
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		} else {
			produceAborts = 0
		}
	}
	v.health.Set(healthCheck, "stopped")
	v.log.Info("stopped")
	return nil
}

// transact processes one poll in one transaction. It returns the abort reason ("" when it
// committed) or an error after which the validator must stop.
func (v *Validator) transact(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches, j *judge) (string, error) {
	if err := sess.Begin(); err != nil {
		return abortError, fmt.Errorf("begin transaction: %w", err)
	}
	v.m.openRecords.Set(float64(fetches.NumRecords()))
	defer v.m.openRecords.Set(0)
	v.tally.reset()
	var pmu sync.Mutex
	var produceErr error
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			pmu.Lock()
			if produceErr == nil {
				produceErr = fmt.Errorf("produce %s: %w", r.Topic, err)
			}
			pmu.Unlock()
		}
	}
	var schemaErr error
	for it := fetches.RecordIter(); !it.Done(); {
		out, err := v.route(j, it.Next())
		if err != nil {
			schemaErr = err
			break
		}
		sess.Produce(ctx, out, promise)
	}
	if schemaErr != nil {
		v.schemaBroken(schemaErr)
		if _, err := sess.End(ctx, kgo.TryAbort); err != nil {
			v.log.Error("abort transaction", "err", err)
		}
		v.m.aborted.WithLabelValues(abortSchema).Inc()
		return abortSchema, fmt.Errorf("broken schema, validator stopped (nothing of the current transaction committed): %w", schemaErr)
	}

	start := time.Now()
	// The flush is bounded: records to a topic that does not exist wait for it without end.
	fctx, cancel := context.WithTimeout(ctx, v.cfg.TransactionTimeout)
	flushErr := sess.Client().Flush(fctx)
	cancel()
	if flushErr != nil {
		flushErr = fmt.Errorf("flush: records not written within %s: %w", v.cfg.TransactionTimeout, flushErr)
	}
	pmu.Lock()
	perr := produceErr
	pmu.Unlock()
	try := kgo.TryCommit
	if flushErr != nil || perr != nil {
		try = kgo.TryAbort
	}
	committed, err := sess.End(ctx, try)
	v.m.commit.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		v.m.aborted.WithLabelValues(abortError).Inc()
		return abortError, fmt.Errorf("end transaction: %w", errors.Join(err, flushErr, perr))
	case try == kgo.TryAbort:
		v.produceErr = errors.Join(flushErr, perr)
		v.m.aborted.WithLabelValues(abortProduce).Inc()
		v.log.Warn("transaction aborted: produce failed; its records will be processed again", "err", errors.Join(flushErr, perr))
		return abortProduce, nil
	case !committed:
		v.m.aborted.WithLabelValues(abortRebalance).Inc()
		v.log.Info("transaction aborted: the group rebalanced; its records will be processed again by their new owner")
		return abortRebalance, nil
	}
	v.m.committed.Inc()
	v.m.add(v.tally)
	v.updateLag(fetches)
	return "", nil
}

// route judges one raw record under j and builds the record that carries it onward: the same
// record with schema and schema_version headers to the type's valid topic, or a DeadLetter with
// a schema_version header to the DLQ. Key, other headers and timestamp are the raw record's.
func (v *Validator) route(j *judge, r *kgo.Record) (*kgo.Record, error) {
	topicType, typ := v.types(r)
	res, err := j.checker.Check(typ, r.Value, Meta{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		TopicType: topicType, Timestamp: r.Timestamp})
	if err != nil {
		return nil, err
	}
	out := &kgo.Record{Key: r.Key, Timestamp: r.Timestamp}
	if res.Valid() {
		v.tally.addValid(typ)
		out.Topic = j.validTopics[typ]
		out.Value = r.Value
		out.Headers = withHeaders(r.Headers, res.Schema, j.versionHdr)
		return out, nil
	}
	dl := res.DeadLetter
	label := typ
	if res.Schema == "" {
		label = kafka.UnknownType // the client's type is client input: not a label value
	}
	v.tally.addDead(label, dl)
	out.Topic = v.cfg.DLQTopic
	out.Value = v.deadLetterValue(dl, r)
	out.Headers = withHeaders(r.Headers, "", j.versionHdr)
	return out, nil
}

// deadLetterValue encodes dl. A dead letter too large for a record batch has its event bytes cut
// (and says so in error), so that one huge event cannot block the stream. Its text fields come
// partly from client input (the event_type header, decode errors quoting it): protobuf strings
// must be UTF-8, so invalid bytes there are stored escaped (\xNN) rather than make the encoding
// fail and the event's bytes go missing.
func (v *Validator) deadLetterValue(dl *clickstreamv1.DeadLetter, r *kgo.Record) []byte {
	escapeDeadLetter(dl)
	b := encodeDeadLetter(dl)
	limit := int(v.cfg.Producer.BatchMaxBytes) - recordSlack - len(r.Key)
	for _, h := range r.Headers {
		limit -= len(h.Key) + len(h.Value)
	}
	if len(b) <= limit {
		return b
	}
	full, keep, base := len(dl.EventBytes), len(dl.EventBytes), dl.Error
	for len(b) > limit && keep > 0 {
		keep = max(0, keep-(len(b)-limit))
		dl.EventBytes = dl.EventBytes[:keep]
		dl.Error = base + cutNote + fmt.Sprintf("%d of %d bytes to fit a record batch", keep, full)
		b = encodeDeadLetter(dl)
	}
	return b
}

// encodeDeadLetter marshals dl. After escapeDeadLetter nothing in a DeadLetter can fail to
// encode; should it anyway, the event's bytes still go out, with the reason, rather than nothing.
func encodeDeadLetter(dl *clickstreamv1.DeadLetter) []byte {
	b, err := proto.Marshal(dl)
	if err == nil {
		return b
	}
	b, _ = proto.Marshal(&clickstreamv1.DeadLetter{
		Kind: dl.GetKind(), EventBytes: dl.GetEventBytes(), SourceTopic: escapeUTF8(dl.GetSourceTopic()),
		SourcePartition: dl.GetSourcePartition(), SourceOffset: dl.GetSourceOffset(),
		ReceivedAt: dl.GetReceivedAt(), FailedAt: dl.GetFailedAt(),
		Error: escapeUTF8("dead letter did not encode: " + err.Error()),
	})
	return b
}

// escapeDeadLetter makes every string field of dl valid UTF-8 (escapeUTF8).
func escapeDeadLetter(dl *clickstreamv1.DeadLetter) {
	for _, s := range []*string{&dl.EventType, &dl.Message, &dl.SourceTopic, &dl.Error, &dl.ValidatorVersion} {
		*s = escapeUTF8(*s)
	}
	for _, vi := range dl.GetViolations() {
		vi.FieldPath, vi.RuleId, vi.Message = escapeUTF8(vi.FieldPath), escapeUTF8(vi.RuleId), escapeUTF8(vi.Message)
	}
}

// escapeUTF8 returns s with every byte that is not part of valid UTF-8 written as \xNN, and a
// backslash before an existing "\x" so that the escaping can be told apart; valid s is returned
// as it is.
func escapeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			fmt.Fprintf(&b, "\\x%02x", s[i])
			i++
			continue
		}
		if r == '\\' && strings.HasPrefix(s[i+1:], "x") {
			b.WriteByte('\\')
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// header returns the value of the first header called key.
func header(hs []kgo.RecordHeader, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// withHeaders returns the raw headers plus schema=<full name> (when schema is not empty) and
// schema_version=<version>, replacing any the raw record carried: only the validator says which
// schema judged an event.
func withHeaders(hs []kgo.RecordHeader, schema string, version []byte) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs)+2)
	for _, h := range hs {
		if h.Key != kafka.HeaderSchema && h.Key != kafka.HeaderSchemaVersion {
			out = append(out, h)
		}
	}
	if schema != "" {
		out = append(out, kgo.RecordHeader{Key: kafka.HeaderSchema, Value: []byte(schema)})
	}
	return append(out, kgo.RecordHeader{Key: kafka.HeaderSchemaVersion, Value: version})
}

// schemaBroken reports err, a problem with the schemas, in the metrics, readiness and log.
func (v *Validator) schemaBroken(err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var se *SchemaError
		if errors.As(e, &se) {
			v.m.brokenSchema.WithLabelValues(se.Type, se.Reason).Set(1)
		}
	}
	v.health.Set(healthCheck, "broken schema: "+err.Error())
	v.log.Error("broken schema: the validator stops; fix the schema or the registry, then restart", "err", err)
}

// updateLag records, for every partition of a committed poll, how far it is behind its end.
func (v *Validator) updateLag(fetches kgo.Fetches) {
	v.mu.Lock()
	defer v.mu.Unlock()
	touched := map[string]bool{}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		next := p.Records[len(p.Records)-1].Offset + 1
		ps := v.lag[p.Topic]
		if ps == nil {
			ps = map[int32]int64{}
			v.lag[p.Topic] = ps
		}
		ps[p.Partition] = max(0, p.HighWatermark-next)
		touched[p.Topic] = true
	})
	for t := range touched {
		v.setLagLocked(t)
	}
}

func (v *Validator) setLagLocked(topic string) {
	var sum int64
	for _, n := range v.lag[topic] {
		sum += n
	}
	v.m.lag.WithLabelValues(topic).Set(float64(sum))
}

// forgetPartitions drops the lag of partitions this instance no longer owns.
func (v *Validator) forgetPartitions(_ context.Context, _ *kgo.Client, gone map[string][]int32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for t, ps := range gone {
		for _, p := range ps {
			delete(v.lag[t], p)
		}
		if _, ok := v.lag[t]; ok {
			v.setLagLocked(t)
		}
	}
}

// clientOpts are the options of the transactional group client.
func (v *Validator) clientOpts() []kgo.Opt {
	c := v.cfg
	opts := append(kafka.ClientOpts(c.Kafka, v.log, v.reg, namespace),
		// Consuming: every raw topic, new ones within MetadataMaxAge, only committed records
		// (the collector's are all committed; read_committed also keeps aborted test data out).
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(rawTopicRegex(c.RawTopicPattern)),
		kgo.ConsumeExcludeTopics("^"+regexp.QuoteMeta(c.DLQTopic)+"$", kafka.ValidTopicRegex),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.MetadataMaxAge(c.MetadataMaxAge),
		kgo.MetadataMinAge(min(c.MetadataMaxAge, time.Second)),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)),
		kgo.OnPartitionsRevoked(v.forgetPartitions),
		kgo.OnPartitionsLost(v.forgetPartitions),

		// Producing: transactional (hence idempotent, acks=all).
		kgo.TransactionalID(c.transactionalID()),
		// No kgo.RecordDeliveryTimeout: franz-go measures it from the record's timestamp, which is
		// the raw record's (often old) receive time here. The broker's transaction timeout bounds
		// a stuck transaction instead.
		kgo.TransactionTimeout(c.TransactionTimeout),
		kgo.MaxBufferedRecords(c.MaxPollRecords+1),
	)
	return append(opts, c.Producer.Opts()...)
}

// start waits for Kafka, puts the schema version in force (given, or read from the schema
// topic) and creates the contract's missing topics for its types.
func (v *Validator) start(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, v.cfg.StartupTimeout)
	defer cancel()
	if v.schemas == nil || v.cfg.CreateTopics {
		if err := kafka.WaitForBrokers(sctx, v.client); err != nil {
			return err
		}
	}
	// The follower lives as long as Run (ctx), not the start-up deadline.
	current, err := v.followSchemas(ctx, v.client)
	if err != nil {
		return err
	}
	if v.cfg.CreateTopics {
		if err := v.ensureTopics(sctx, current.Names()); err != nil {
			return err
		}
		// The consumer's first metadata may predate the raw topics just created.
		v.client.ForceMetadataRefresh()
	}
	if err := v.apply(sctx, v.client, current); err != nil {
		v.schemaBroken(err)
		return err
	}
	return nil
}

// ensureTopics creates the contract's topics of types that are missing, and the DLQ.
func (v *Validator) ensureTopics(ctx context.Context, types []string) error {
	topics := kafka.ContractTopics(v.cfg.RawTopicPattern, v.cfg.DLQTopic, types)
	topics = append(topics, v.cfg.DLQTopic)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if err := kafka.EnsureTopics(ctx, v.client, v.cfg.Topics, topics...); err != nil {
		return err
	}
	v.log.Info("kafka reachable, contract topics present", "topics", len(topics))
	return nil
}
