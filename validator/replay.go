package validator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
)

// DefaultLedgerTopic records which dead letters were replayed: a compacted topic keyed
// "<dlq partition>/<dlq offset>", so a dead letter is replayed at most once however often a
// replay runs. One ledger serves one dead-letter topic.
const DefaultLedgerTopic = "_clickstream_dlq_replays"

// ReplayConfig says which dead letters Replay moves back and where.
type ReplayConfig struct {
	// Kafka is how to reach the brokers.
	Kafka kafka.Config
	// DLQTopic is the dead-letter topic; empty: kafka.DefaultDLQTopic.
	DLQTopic string
	// EventType selects the dead letters of one event type (DeadLetter.event_type); required.
	EventType string
	// Since and Until select dead letters by receive time (the collector's, the record
	// timestamp): Since <= received < Until. A zero bound is no bound.
	Since, Until time.Time
	// LedgerTopic records the replayed dead letters; empty: DefaultLedgerTopic.
	LedgerTopic string
	// Topics is how a missing valid topic is created (the ledger gets one compacted partition
	// with its replication factor); zero values: the broker's defaults.
	Topics kafka.Topics
	// DryRun counts what would be replayed; nothing is created or written.
	DryRun bool
}

// ReplayResult counts what Replay found and did.
type ReplayResult struct {
	// Scanned is every record of the DLQ read (between its start and its end at the call).
	Scanned int
	// Matched are the dead letters of EventType received in [Since, Until).
	Matched int
	// Replayed passed the schemas now and were written to the valid topic (DryRun: would be).
	Replayed int
	// StillInvalid were refused again; they stay in the DLQ only.
	StillInvalid int
	// AlreadyReplayed were in the ledger: replayed by an earlier call, skipped.
	AlreadyReplayed int
}

// cutNote is the start of what a dead letter's error says when its event bytes were cut to fit
// a record batch (Validator.deadLetterValue): such bytes are not the event and are never replayed.
const cutNote = "; event_bytes cut to their first "

// replayTxnPrefix prefixes the transactional id of a replay: one id per event type, so that two
// replays of the same type fence each other (the later one, before it reads the ledger, bumps
// the producer epoch: the earlier one's transaction, open or yet to begin, aborts or fails) and
// none can replay a dead letter twice.
const replayTxnPrefix = "clickstream-dlq-replay-"

// Replay re-validates the dead letters of one event type against reg and moves those that now
// pass to the type's valid topic, each once. It reads the DLQ from its start to its end offsets
// at the time of the call (read_committed), skips the dead letters the ledger lists, and checks
// each one's event bytes as the validator would (a Checker built from reg). A dead letter that
// passes becomes a record of the valid topic with the dead letter's key, its headers (the raw
// record's: req_guid, event_index, conn_id, conn_group, sent_time, received_at, event_type),
// schema, schema_version = reg's version and replayed_from_dlq=true, and the original receive
// time as timestamp; a ledger record keyed "<partition>/<offset>" marks it replayed. All of them
// are written in one Kafka transaction: either every replayed record and its ledger entry is
// there, or none (readers must use read_committed, as for the validator's own output).
//
// A dead letter's event_type is the client's: one of an unknown type (UNKNOWN_TYPE) is replayed
// too once reg knows the type.
func Replay(ctx context.Context, cfg ReplayConfig, reg *registry.Registry, log *slog.Logger) (ReplayResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = kafka.DefaultDLQTopic
	}
	if cfg.LedgerTopic == "" {
		cfg.LedgerTopic = DefaultLedgerTopic
	}
	if cfg.Topics.Partitions == 0 {
		cfg.Topics.Partitions = -1
	}
	if cfg.Topics.ReplicationFactor == 0 {
		cfg.Topics.ReplicationFactor = -1
	}
	if _, ok := reg.Lookup(cfg.EventType); !ok {
		return ReplayResult{}, fmt.Errorf("replay: event type %q is not in schema version %d", cfg.EventType, reg.Version())
	}
	if !cfg.Until.IsZero() && !cfg.Since.Before(cfg.Until) {
		return ReplayResult{}, fmt.Errorf("replay: empty range: since %s is not before until %s", cfg.Since, cfg.Until)
	}
	checker, err := NewChecker(reg, CheckerConfig{Decoder: DecoderAuto, MaxEventBytes: DefaultConfig().MaxEventBytes})
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: schema version %d: %w", reg.Version(), err)
	}
	validTopic := kafka.ValidTopic(cfg.EventType)

	cl, err := kafka.NewClient(cfg.Kafka, log, nil, "",
		kgo.TransactionalID(replayTxnPrefix+cfg.EventType),
		// The transaction is open only while the replayed records are written (everything is
		// read first), but that is one transaction for the whole range.
		kgo.TransactionTimeout(5*time.Minute))
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: %w", err)
	}
	defer cl.Close()
	if !cfg.DryRun {
		if err := ensureReplayTopics(ctx, cl, cfg, validTopic); err != nil {
			return ReplayResult{}, fmt.Errorf("replay: %w", err)
		}
		// Fence before reading the ledger: a replay of the same type still running can no longer
		// commit, so the ledger read next is the whole truth.
		if _, _, err := cl.ProducerID(ctx); err != nil {
			return ReplayResult{}, fmt.Errorf("replay: transactional producer: %w", err)
		}
	}

	ledger := map[string]bool{}
	if err := readRange(ctx, cl, cfg.Kafka, log, cfg.LedgerTopic, func(r *kgo.Record) error {
		ledger[string(r.Key)] = r.Value != nil // a tombstone un-marks
		return nil
	}); err != nil {
		return ReplayResult{}, fmt.Errorf("replay: read ledger %s: %w", cfg.LedgerTopic, err)
	}

	var res ReplayResult
	var out []*kgo.Record
	replayedAt := time.Now().UTC()
	versionHdr := strconv.AppendUint(nil, uint64(reg.Version()), 10)
	err = readRange(ctx, cl, cfg.Kafka, log, cfg.DLQTopic, func(r *kgo.Record) error {
		res.Scanned++
		dl := new(clickstreamv1.DeadLetter)
		if err := proto.Unmarshal(r.Value, dl); err != nil {
			log.Warn("dlq record is not a dead letter; skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		if dl.GetEventType() != cfg.EventType {
			return nil
		}
		received := r.Timestamp
		if dl.GetReceivedAt() != nil {
			received = dl.GetReceivedAt().AsTime()
		}
		if received.Before(cfg.Since) || !cfg.Until.IsZero() && !received.Before(cfg.Until) {
			return nil
		}
		res.Matched++
		key := ledgerKey(r.Partition, r.Offset)
		if ledger[key] {
			res.AlreadyReplayed++
			return nil
		}
		// A schema version cannot fix an event's size, and cut bytes are not the whole event.
		if dl.GetKind() == clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE || strings.Contains(dl.GetError(), cutNote) {
			res.StillInvalid++
			return nil
		}
		// TopicType "": a type missing from reg is judged UNKNOWN_TYPE, never a missing schema;
		// EventType is in reg anyway.
		v, err := checker.Check(dl.GetEventType(), dl.GetEventBytes(), Meta{Topic: dl.GetSourceTopic(),
			Partition: dl.GetSourcePartition(), Offset: dl.GetSourceOffset(), Timestamp: received})
		if err != nil {
			return err // a rule that fails to evaluate: nothing is replayed
		}
		if !v.Valid() {
			res.StillInvalid++
			return nil
		}
		res.Replayed++
		hs := make([]kgo.RecordHeader, 0, len(r.Headers)+3)
		for _, h := range r.Headers {
			switch h.Key {
			case kafka.HeaderSchema, kafka.HeaderSchemaVersion, kafka.HeaderReplayedFromDLQ:
			default:
				hs = append(hs, h)
			}
		}
		hs = append(hs,
			kgo.RecordHeader{Key: kafka.HeaderSchema, Value: []byte(v.Schema)},
			kgo.RecordHeader{Key: kafka.HeaderSchemaVersion, Value: versionHdr},
			kgo.RecordHeader{Key: kafka.HeaderReplayedFromDLQ, Value: []byte("true")})
		entry, _ := json.Marshal(ledgerEntry{DLQTopic: cfg.DLQTopic, EventType: cfg.EventType, ValidTopic: validTopic,
			SchemaVersion: reg.Version(), ReplayedAt: replayedAt})
		out = append(out,
			&kgo.Record{Topic: validTopic, Key: r.Key, Value: dl.GetEventBytes(), Headers: hs, Timestamp: received},
			&kgo.Record{Topic: cfg.LedgerTopic, Key: []byte(key), Value: entry, Timestamp: replayedAt})
		return nil
	})
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay: read %s: %w", cfg.DLQTopic, err)
	}
	if cfg.DryRun || len(out) == 0 {
		log.Info("dlq replay done", "dlq", cfg.DLQTopic, "type", cfg.EventType, "schema_version", reg.Version(),
			"dry_run", cfg.DryRun, "scanned", res.Scanned, "matched", res.Matched, "replayed", res.Replayed,
			"still_invalid", res.StillInvalid, "already_replayed", res.AlreadyReplayed)
		return res, nil
	}
	if err := replayTransaction(ctx, cl, out); err != nil {
		return ReplayResult{}, fmt.Errorf("replay: nothing replayed: %w", err)
	}
	log.Info("dlq replay done", "dlq", cfg.DLQTopic, "type", cfg.EventType, "schema_version", reg.Version(),
		"valid_topic", validTopic, "scanned", res.Scanned, "matched", res.Matched, "replayed", res.Replayed,
		"still_invalid", res.StillInvalid, "already_replayed", res.AlreadyReplayed)
	return res, nil
}

// ledgerEntry is the value of a ledger record, for people reading the ledger.
type ledgerEntry struct {
	DLQTopic      string    `json:"dlq_topic"`
	EventType     string    `json:"event_type"`
	ValidTopic    string    `json:"valid_topic"`
	SchemaVersion uint32    `json:"schema_version"`
	ReplayedAt    time.Time `json:"replayed_at"`
}

func ledgerKey(partition int32, offset int64) string {
	return strconv.FormatInt(int64(partition), 10) + "/" + strconv.FormatInt(offset, 10)
}

// replayTransaction writes out in one transaction, and aborts it on any error.
func replayTransaction(ctx context.Context, cl *kgo.Client, out []*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	var mu sync.Mutex
	var produceErr error
	for _, r := range out {
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if produceErr == nil {
					produceErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
				}
				mu.Unlock()
			}
		})
	}
	err := cl.Flush(ctx)
	mu.Lock()
	err = errors.Join(err, produceErr)
	mu.Unlock()
	if err == nil {
		if err = cl.EndTransaction(ctx, kgo.TryCommit); err == nil {
			return nil
		}
		err = fmt.Errorf("commit: %w", err)
	}
	// Abort: with the records still buffered (a failed flush) dropped first, so that none
	// of them can join a later transaction. A commit whose outcome is unknown is aborted by
	// the retry with TryAbort, which bumps the producer epoch (franz-go's EndTransaction).
	if aerr := cl.AbortBufferedRecords(ctx); aerr != nil {
		err = errors.Join(err, fmt.Errorf("drop buffered records: %w", aerr))
	}
	if aerr := cl.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
		err = errors.Join(err, fmt.Errorf("abort: %w", aerr))
	}
	return err
}

// ensureReplayTopics creates the valid topic and the compacted ledger when they are missing.
func ensureReplayTopics(ctx context.Context, cl *kgo.Client, cfg ReplayConfig, validTopic string) error {
	if err := kafka.EnsureTopics(ctx, cl, cfg.Topics, validTopic); err != nil {
		return err
	}
	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, cfg.Topics.ReplicationFactor,
		map[string]*string{"cleanup.policy": &compact}, cfg.LedgerTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", cfg.LedgerTopic, err)
	}
	return nil
}

// readRange reads topic from its start offsets to its end offsets as they are now, with
// read_committed, and hands every data record to fn (an error from fn stops the read). A topic
// that does not exist reads as empty. admin lists the offsets; a reader of its own consumes.
func readRange(ctx context.Context, admin *kgo.Client, kcfg kafka.Config, log *slog.Logger, topic string, fn func(*kgo.Record) error) error {
	adm := kadm.NewClient(admin)
	// The last stable offsets: below them every transaction is decided.
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	end := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
			}
			return
		}
		s, ok := starts.Lookup(topic, o.Partition)
		if !ok || s.Err != nil {
			errs = append(errs, fmt.Errorf("partition %d: no start offset", o.Partition))
			return
		}
		if s.Offset < o.Offset {
			end[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(end) == 0 {
		return nil
	}
	// Control records are kept: with transactional writers the record before the end offset is
	// usually a commit marker, and seeing it is how a partition is known to be read to its end.
	cl, err := kafka.NewClient(kcfg, log, nil, "",
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(end) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		fs.EachError(func(_ string, p int32, err error) {
			errs = append(errs, fmt.Errorf("fetch partition %d: %w", p, err))
		})
		if err := errors.Join(errs...); err != nil {
			return err
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			last, ok := end[r.Partition]
			if !ok {
				continue // a partition already read to its end
			}
			if r.Offset < last && !r.Attrs.IsControl() {
				if err := fn(r); err != nil {
					return err
				}
			}
			// Done once the last offset below the end is seen, or anything past it (the records
			// just below the end were an aborted transaction's, which read_committed drops).
			if r.Offset+1 >= last {
				delete(end, r.Partition)
			}
		}
	}
	return nil
}
