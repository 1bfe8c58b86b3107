package schemastore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
)

// Rejected is a record of the topic that was not applied, and why.
type Rejected struct {
	Offset  int64
	Version uint32 // 0 when the record does not decode
	Err     error
}

// History is what the topic holds: every version that was applied in order, and what was not.
type History struct {
	Versions []*clickstreamv1.SchemaVersion // applied, ascending
	Latest   *registry.Registry             // the registry of the last applied version; nil when none
	Rejected []Rejected
	// LastVersion is the highest version number seen on the topic, applied or not: the next
	// push takes LastVersion+1, so a number is never reused.
	LastVersion uint32
}

// Next is the version a push appends.
func (h *History) Next() uint32 { return h.LastVersion + 1 }

// Find returns the applied version n.
func (h *History) Find(n uint32) (*clickstreamv1.SchemaVersion, bool) {
	for _, v := range h.Versions {
		if v.GetVersion() == n {
			return v, true
		}
	}
	return nil, false
}

// apply decodes one record and applies it when it may follow the latest applied version.
func (h *History) apply(r *kgo.Record) (*registry.Registry, error) {
	var sv clickstreamv1.SchemaVersion
	if err := proto.Unmarshal(r.Value, &sv); err != nil {
		return nil, fmt.Errorf("offset %d: not a clickstream.v1.SchemaVersion: %w", r.Offset, err)
	}
	h.LastVersion = max(h.LastVersion, sv.GetVersion())
	reg, err := Accept(h.Latest, &sv)
	if err != nil {
		return nil, fmt.Errorf("offset %d: %w", r.Offset, err)
	}
	h.Versions = append(h.Versions, &sv)
	h.Latest = reg
	return reg, nil
}

// Accept builds the registry of sv and checks that it may follow prev (nil: none yet): a
// higher version number, files that link, rules that compile, and no incompatible change.
func Accept(prev *registry.Registry, sv *clickstreamv1.SchemaVersion) (*registry.Registry, error) {
	if prev != nil && sv.GetVersion() <= prev.Version() {
		return nil, fmt.Errorf("version %d: not above version %d in force", sv.GetVersion(), prev.Version())
	}
	if sv.GetVersion() == 0 {
		return nil, errors.New("version 0: versions count from 1")
	}
	reg, err := registry.FromDescriptorSet(sv.GetFiles(), sv.GetVersion())
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", sv.GetVersion(), err)
	}
	if err := reg.CheckRules(); err != nil {
		return nil, fmt.Errorf("version %d: rules: %w", sv.GetVersion(), err)
	}
	if prev != nil {
		if err := registry.Compatible(prev, reg); err != nil {
			return nil, fmt.Errorf("version %d: incompatible with version %d: %w", sv.GetVersion(), prev.Version(), err)
		}
	}
	return reg, nil
}

// newReader is a client that reads topic from its start, outside any consumer group.
func newReader(opts []kgo.Opt, topic string) (*kgo.Client, error) {
	return kgo.NewClient(append(opts,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The topic may not exist yet (nothing pushed): look for it this often.
		kgo.MetadataMinAge(time.Second), kgo.MetadataMaxAge(5*time.Second),
	)...)
}

// endOffset is the topic's end offset (it has one partition), or 0 when it does not exist.
func endOffset(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	var end int64
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				errs = append(errs, o.Err)
			}
			return
		}
		end = max(end, o.Offset)
	})
	if err := ends.Error(); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		errs = append(errs, err)
	}
	return end, errors.Join(errs...)
}

// readTo polls cl until every record below end was seen, handing each to fn.
func readTo(ctx context.Context, cl *kgo.Client, end int64, fn func(*kgo.Record)) error {
	next := int64(0)
	for next < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var errs []error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, kerr.UnknownTopicOrPartition) {
				errs = append(errs, err)
			}
		})
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		// Versions are appended without transactions and each has its own key, so compaction
		// never removes the last record: the last offset seen reaches end-1.
		fs.EachRecord(func(r *kgo.Record) {
			fn(r)
			next = r.Offset + 1
		})
	}
	return nil
}

// Load reads the whole topic with a client built from opts (kafka.ClientOpts) and returns its
// history. A topic that does not exist yet has an empty history.
func Load(ctx context.Context, opts []kgo.Opt, topic string) (*History, error) {
	cl, err := newReader(opts, topic)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	h := &History{}
	err = readExisting(ctx, cl, topic, func(r *kgo.Record) { _, _ = h.record(r) })
	return h, err
}

// record applies r, or keeps it in Rejected with the reason.
func (h *History) record(r *kgo.Record) (*registry.Registry, error) {
	reg, err := h.apply(r)
	if err != nil {
		h.Rejected = append(h.Rejected, Rejected{Offset: r.Offset, Err: err})
	}
	return reg, err
}

// readExisting hands fn every record on topic now (up to its current end), in order.
func readExisting(ctx context.Context, cl *kgo.Client, topic string, fn func(*kgo.Record)) error {
	end, err := endOffset(ctx, cl, topic)
	if err != nil {
		return err
	}
	return readTo(ctx, cl, end, fn)
}

// EnsureTopic creates the schema topic when it does not exist: one partition (versions are
// ordered) and cleanup.policy=compact, so every version (each its own key) is kept forever.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, replication int16) error {
	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, replication, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// Append writes sv to topic, keyed by its version, and waits for Kafka's acknowledgement
// (cl must produce with acks=all, franz-go's default).
func Append(ctx context.Context, cl *kgo.Client, topic string, sv *clickstreamv1.SchemaVersion) error {
	value, err := proto.Marshal(sv)
	if err != nil {
		return fmt.Errorf("encode schema version %d: %w", sv.GetVersion(), err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(strconv.FormatUint(uint64(sv.GetVersion()), 10)), Value: value}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("append schema version %d to %s: %w", sv.GetVersion(), topic, err)
	}
	return nil
}

// Push appends set as the next version of topic when it may follow the latest one (Accept),
// creating the topic if needed; before appending it calls prepare with the new registry (the
// caller creates the new types' topics there, so no service routes a type before its topics
// exist). A set equal to the latest version's is not appended: Push returns that version and
// pushed=false. Nothing is written when any check fails.
func Push(ctx context.Context, cl *kgo.Client, opts []kgo.Opt, topic string, replication int16, sv *clickstreamv1.SchemaVersion, prepare func(*registry.Registry) error) (reg *registry.Registry, pushed bool, err error) {
	if err := EnsureTopic(ctx, cl, topic, replication); err != nil {
		return nil, false, err
	}
	h, err := Load(ctx, opts, topic)
	if err != nil {
		return nil, false, err
	}
	if h.Latest != nil && proto.Equal(h.Latest.DescriptorSet(), sv.GetFiles()) {
		return h.Latest, false, nil
	}
	sv = proto.CloneOf(sv)
	sv.Version = h.Next()
	reg, err = Accept(h.Latest, sv)
	if err != nil {
		return nil, false, err
	}
	if prepare != nil {
		if err := prepare(reg); err != nil {
			return nil, false, err
		}
	}
	if err := Append(ctx, cl, topic, sv); err != nil {
		return nil, false, err
	}
	return reg, true, nil
}
