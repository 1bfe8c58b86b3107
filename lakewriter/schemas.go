package lakewriter

import (
	"context"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
)

// Schema evolution while running. The schema follower stores each new version in s.pending and
// interrupts the poll; the consuming goroutine puts it in force between PollRecords and
// AllowRebalance (no rebalance runs then, and no record is being written), in this order:
//
//  1. the open files of every table whose layout changes are committed through the normal
//     protocol (commit reason "schema"): a file holds rows of one table schema;
//  2. every writer switches to its table's new schema (tables whose layout is the same switch
//     without rotating, so a version that changes nothing in a table costs nothing);
//  3. the registrar creates the new tables and alters the changed ones (new columns appended,
//     CASCADE) before it registers partitions of them;
//  4. topics that were paused because their type was unknown get writers, are seeked to where
//     the lake says and resumed.
//
// A batch holding a record validated under a version not read yet (header schema_version)
// waits for it before anything of the batch is written: a record is never written with an
// older table schema, which would drop its new fields silently.

// applyPending puts the newest stored schema version in force, if it is newer than the one in
// force. Called on the consuming goroutine with s.mu held.
func (s *Lakewriter) applyPending() error {
	r := s.pending.Swap(nil)
	if r == nil {
		return nil
	}
	return s.applySchemas(r)
}

// applySchemas puts reg in force (see above). Called on the consuming goroutine with s.mu held.
func (s *Lakewriter) applySchemas(reg *registry.Registry) error {
	if reg.Version() <= s.catalog.version {
		return nil
	}
	next, ch, err := s.catalog.next(reg)
	if err != nil {
		// The tables of the version cannot be derived (a recursive message, a field named
		// like a system column): as at start, an operator error that stops the lakewriter.
		s.fatal = err
		s.log.Error("schema version cannot be landed; stopping", "version", reg.Version(), "err", err)
		return err
	}
	for _, w := range s.sortedWriters() {
		if _, ok := ch.changed[w.schema.Table]; ok {
			if err := s.commit(w, "schema"); err != nil {
				return err
			}
		}
		if ns := next.tables[w.schema.Table]; ns != nil {
			w.setSchema(ns)
		}
	}
	prev := s.catalog.version
	s.catalog = next
	var evolve []*Schema
	for _, t := range ch.added {
		evolve = append(evolve, next.tables[t])
		s.m.schemaChanges.WithLabelValues(changeTableAdded).Inc()
	}
	changed := make([]string, 0, len(ch.changed))
	for t, kind := range ch.changed {
		changed = append(changed, t+":"+kind)
		evolve = append(evolve, next.tables[t])
		s.m.schemaChanges.WithLabelValues(kind).Inc()
		if kind == changeColumnsRetyped {
			s.log.Error("schema version retypes a column: files get the new type, the metastore table keeps the old one",
				"table", t, "version", reg.Version())
		}
	}
	sort.Strings(changed)
	s.rgs.update(evolve)
	resumed := s.resumeKnown()
	s.m.schemaVersion.Set(float64(next.version))
	s.log.Info("schema version in force", "version", next.version, "previous", prev, "tables_added", ch.added,
		"tables_changed", changed, "types_removed", ch.removed, "topics_resumed", resumed)
	return nil
}

// setSchema switches a writer to its table's schema of a new version. Its open files (if any)
// were opened with a schema of the same layout, or committed just before.
func (w *partitionWriter) setSchema(ns *Schema) {
	if w.schema == ns {
		return
	}
	w.schema = ns
	w.rows = ns.newRowBuilder()
}

// resumeKnown sets up the topics that were paused because the version in force lacked their
// event type and that the new one has: each owned partition gets a writer recovered from the
// lake and the consumer is moved to its position (records returned while it was paused were not
// written; this batch's records of it are stale and skipped), then the topic is resumed.
func (s *Lakewriter) resumeKnown() []string {
	var topics []string
	seek := map[string]map[int32]kgo.EpochOffset{}
	for topic := range s.unknown {
		schema, ok := s.catalog.forTopic(topic)
		if !ok {
			continue
		}
		all := true
		for p := range s.unknownParts[topic] {
			rec, err := s.recover(topic, p)
			if err != nil {
				// Left paused: the next version, a rebalance or a restart recovers it again.
				s.log.Error("topic of a new event type stays paused", "topic", topic, "partition", p, "err", err)
				all = false
				continue
			}
			w := newPartitionWriter(s, topic, p, schema)
			w.start, w.next = rec.next, rec.next
			s.tps[tp{topic, p}] = w
			if s.seeked == nil {
				s.seeked = map[tp]bool{}
			}
			s.seeked[tp{topic, p}] = true
			if seek[topic] == nil {
				seek[topic] = map[int32]kgo.EpochOffset{}
			}
			// An offset below the log start (nothing committed, 0) is reset to the start.
			seek[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: rec.next}
			delete(s.unknownParts[topic], p)
		}
		if all {
			delete(s.unknown, topic)
			delete(s.unknownParts, topic)
			topics = append(topics, topic)
		}
	}
	sort.Strings(topics)
	if s.cl != nil && len(topics) > 0 {
		s.cl.SetOffsets(seek)
		s.cl.ResumeFetchTopics(topics...)
	}
	return topics
}

// versionNeeded is the highest schema version the event records of fetches were validated
// under (header schema_version); 0 when none says. Dead letters do not count: their table's
// schema does not depend on the event schemas.
func (s *Lakewriter) versionNeeded(fetches kgo.Fetches) uint32 {
	var v uint32
	fetches.EachRecord(func(r *kgo.Record) {
		if r.Topic == s.cfg.DLQTopic {
			return
		}
		for _, h := range r.Headers {
			if h.Key == kafka.HeaderSchemaVersion {
				if n, err := strconv.ParseUint(string(h.Value), 10, 32); err == nil {
					v = max(v, uint32(n))
				}
			}
		}
	})
	return v
}

// waitForSchemas waits until schema version v is read from the schema topic and puts it in
// force. It releases s.mu while waiting: the consumer cannot rebalance meanwhile (the batch is
// being handled), only lose partitions, and handle looks its writers up afterwards. applied is
// false when ctx ended first.
func (s *Lakewriter) waitForSchemas(ctx context.Context, v uint32) (applied bool, err error) {
	s.m.schemaWaits.Inc()
	have := s.catalog.version
	s.log.Info("waiting for the schema version records were validated under", "version", v, "in_force", have)
	s.mu.Unlock()
	reg, err := s.schemas.WaitFor(ctx, v)
	s.mu.Lock()
	if err != nil {
		s.log.Warn("stopped waiting for a schema version; the batch is consumed again after restart", "version", v, "err", err)
		return false, nil
	}
	if err := s.applySchemas(reg); err != nil {
		return false, err
	}
	// A later version may have been stored meanwhile; applying it too is harmless.
	return true, s.applyPending()
}
