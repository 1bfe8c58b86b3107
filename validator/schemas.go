package validator

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/schemastore"
)

// judge is one schema version as the data path uses it: the Checker built from it, each type's
// valid topic, and the schema_version header value. A new version replaces it whole
// (Validator.judge is an atomic.Pointer), so the data path never takes a lock for it.
type judge struct {
	checker     *Checker
	version     uint32
	versionHdr  []byte            // the version in decimal, the value of the schema_version header
	validTopics map[string]string // event type -> valid topic
}

func newJudge(c *Checker, reg *registry.Registry) *judge {
	j := &judge{checker: c, version: reg.Version(), versionHdr: strconv.AppendUint(nil, uint64(reg.Version()), 10),
		validTopics: map[string]string{}}
	for _, t := range reg.Names() {
		j.validTopics[t] = kafka.ValidTopic(t)
	}
	return j
}

func (v *Validator) checkerConfig() CheckerConfig {
	return CheckerConfig{Decoder: v.cfg.Decoder, MaxEventBytes: v.cfg.MaxEventBytes}
}

// apply puts reg in force: it builds reg's Checker and swaps it in, unless a version at least as
// new is already in force. Types the version adds get their raw and valid topics first (with
// CreateTopics; cl may be nil before Run), and cl refreshes its metadata at once so that the new
// raw topics, consumed by regular expression, are found within a second rather than at the next
// METADATA_MAX_AGE. A version whose Checker cannot be built (a *SchemaError) is logged and
// counted once and returned as an error; the version in force stays.
//
// The follower's goroutine calls it for every version, and the data path for the version it
// waited for (awaitVersion): whichever comes first builds the Checker, the other finds it done.
func (v *Validator) apply(ctx context.Context, cl *kgo.Client, reg *registry.Registry) error {
	v.applyMu.Lock()
	defer v.applyMu.Unlock()
	cur := v.judge.Load()
	if cur != nil && cur.version >= reg.Version() {
		return nil
	}
	if v.failed != nil && v.failedVersion == reg.Version() {
		return v.failed
	}
	c, err := NewChecker(reg, v.checkerConfig())
	if err != nil {
		err = fmt.Errorf("schema version %d: %w", reg.Version(), err)
		v.failed, v.failedVersion = err, reg.Version()
		v.m.checkerFailures.Inc()
		if cur != nil {
			v.log.Error("schema version not applied: its rules cannot be checked; the version in force stays",
				"version", reg.Version(), "in_force", cur.version, "err", err)
		}
		return err
	}
	var added []string
	for _, t := range reg.Names() {
		if cur == nil || cur.validTopics[t] == "" {
			added = append(added, t)
		}
	}
	if cur != nil && len(added) > 0 && cl != nil && v.cfg.CreateTopics {
		topics := make([]string, 0, 2*len(added))
		for _, t := range added {
			topics = append(topics, kafka.RawTopic(v.cfg.RawTopicPattern, t), kafka.ValidTopic(t))
		}
		slices.Sort(topics)
		topics = slices.Compact(topics) // a pattern without %s is one raw topic for every type
		if err := kafka.EnsureTopics(ctx, cl, v.cfg.Topics, topics...); err != nil {
			// `clickstream schemas push` creates them before it appends the version. If they are
			// still missing, the new type's events are not lost: their transactions abort on the
			// missing valid topic and are retried.
			v.log.Error("topics of the types a schema version adds", "version", reg.Version(), "types", added, "err", err)
		}
	}
	v.m.addTypes(reg.Names())
	v.judge.Store(newJudge(c, reg))
	if cur == nil {
		return nil // the start-up version: Run logs it
	}
	if len(added) > 0 && cl != nil {
		cl.ForceMetadataRefresh()
	}
	v.log.Info("schema version in force", "version", reg.Version(), "previous", cur.version, "types", reg.String(), "added", added)
	return nil
}

// followSchemas opens the schema versions (the process's, or the schema topic followed until
// ctx ends), puts the version in force and subscribes to the later ones.
func (v *Validator) followSchemas(ctx context.Context, cl *kgo.Client) (*registry.Registry, error) {
	live, err := schemastore.Open(ctx, v.schemas, kafka.ClientOpts(v.cfg.Kafka, v.log, nil, ""), v.cfg.SchemasTopic, v.log, v.reg, namespace)
	if err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	v.schemas = live
	current := live.Subscribe(ctx, func(r *registry.Registry) {
		actx, cancel := context.WithTimeout(ctx, v.cfg.StartupTimeout)
		defer cancel()
		_ = v.apply(actx, cl, r) // logged and counted; the version in force stays
	})
	return current, nil
}

// awaitSchemas is called before a poll's transaction begins: when a record of the poll is on a
// raw topic of its own type but that type has no schema in the version in force, the schema
// topic may simply be ahead of this validator (a push created the topics, the collector already
// took events of the new type). It waits up to SchemaWait for a newer version and returns the
// judge in force then. Waiting before Begin keeps the transaction short: its timeout is
// usually below SchemaWait. If no version brings the type, the transaction finds the missing
// schema and the validator stops, as before.
func (v *Validator) awaitSchemas(ctx context.Context, fetches kgo.Fetches) *judge {
	j := v.judge.Load()
	if v.cfg.SchemaWait <= 0 {
		return j
	}
	var missing string
	for it := fetches.RecordIter(); !it.Done() && missing == ""; {
		r := it.Next()
		topicType, typ := v.types(r)
		if j.checker.missingSchema(typ, topicType) {
			missing = typ
		}
	}
	if missing == "" {
		return j
	}
	v.log.Info("event type without schema on its own raw topic: waiting for a newer schema version",
		"type", missing, "version", j.version, "wait", v.cfg.SchemaWait)
	wctx, cancel := context.WithTimeout(ctx, v.cfg.SchemaWait)
	defer cancel()
	reg, err := v.schemas.WaitFor(wctx, j.version+1)
	if err == nil {
		err = v.apply(ctx, v.client, reg)
	}
	if ctx.Err() != nil {
		return j // shutting down: Run leaves the poll uncommitted
	}
	if err != nil {
		v.m.schemaWaits.WithLabelValues(waitNoVersion).Inc()
		v.log.Warn("no newer schema version applied in time", "type", missing, "version", j.version, "err", err)
		return v.judge.Load()
	}
	j = v.judge.Load()
	v.m.schemaWaits.WithLabelValues(waitNewVersion).Inc()
	v.log.Info("waited for a newer schema version", "type", missing, "version", j.version, "known", j.checker.Schema(missing) != "")
	return j
}

// types returns the type r's raw topic is dedicated to and the event's type (its event_type
// header, else the topic's type).
func (v *Validator) types(r *kgo.Record) (topicType, typ string) {
	topicType, ok := v.topicTypes[r.Topic]
	if !ok {
		if sm := v.rawRe.FindStringSubmatch(r.Topic); sm != nil {
			topicType = sm[1]
		}
		v.topicTypes[r.Topic] = topicType
	}
	typ = topicType
	if h := header(r.Headers, kafka.HeaderEventType); h != "" {
		typ = h
	}
	return topicType, typ
}
