package lakewriter

import (
	"fmt"
	"regexp"
	"slices"
	"sort"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/lake"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
)

// TableSchemas derives the schema of every table: one per event type of reg (named after the
// type), plus dead_letters from clickstream.v1.DeadLetter. Each carries reg's version.
func TableSchemas(reg *registry.Registry) ([]*Schema, error) {
	var out []*Schema
	for _, et := range reg.Types() {
		if et.Name == lake.DeadLettersTable {
			// The dead-letter table has its own schema; an event type of that name would
			// land in it (and its topic is ignored by forTopic).
			return nil, fmt.Errorf("event type %s: the name of the dead-letter table", et.Name)
		}
		s, err := NewSchema(et.Name, et.Message)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", et.Name, err)
		}
		if et.IDField != nil {
			s.IDField = string(et.IDField.Name())
		}
		s.Version = reg.Version()
		out = append(out, s)
	}
	dl, err := NewSchema(lake.DeadLettersTable, (&clickstreamv1.DeadLetter{}).ProtoReflect().Descriptor())
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", lake.DeadLettersTable, err)
	}
	dl.Version = reg.Version()
	return append(out, dl), nil
}

// catalog maps consumed topics to tables, at one schema version. It is immutable: a new
// version makes a new catalog (next).
type catalog struct {
	version uint32
	tables  map[string]*Schema // by table name
	valid   *regexp.Regexp     // captures the event type
	dlq     string
	ordered []*Schema // event tables by name, then dead_letters
}

func newCatalog(reg *registry.Registry, validRegex, dlqTopic string) (*catalog, error) {
	re, err := regexp.Compile(validRegex)
	if err != nil {
		return nil, err
	}
	schemas, err := TableSchemas(reg)
	if err != nil {
		return nil, err
	}
	c := &catalog{version: reg.Version(), tables: map[string]*Schema{}, valid: re, dlq: dlqTopic, ordered: schemas}
	for _, s := range schemas {
		c.tables[s.Table] = s
	}
	return c, nil
}

// forTopic returns the table a topic lands in; ok is false for a topic of an event type the
// schema version in force does not have (the lakewriter pauses it until a version adds it).
func (c *catalog) forTopic(topic string) (*Schema, bool) {
	if topic == c.dlq {
		return c.tables[lake.DeadLettersTable], true
	}
	m := c.valid.FindStringSubmatch(topic)
	if len(m) < 2 || m[1] == lake.DeadLettersTable {
		return nil, false
	}
	s, ok := c.tables[m[1]]
	return s, ok
}

// Kinds of table change between two schema versions (the change label of
// schema_changes_total).
const (
	changeTableAdded     = "table_added"     // a new event type: a new table
	changeColumnsAdded   = "columns_added"   // new fields, top-level or appended inside structs
	changeColumnsDropped = "columns_dropped" // fields gone: new files lack them, the table keeps them
	changeColumnsRetyped = "columns_retyped" // a field changed type: the metastore table cannot follow
	changeOther          = "other"           // columns reordered in the files, id field or message changed
)

// schemaChange is what a new schema version changes in the tables.
type schemaChange struct {
	added   []string          // tables of new event types
	changed map[string]string // table → change kind: its files get a new layout
	removed []string          // event types the version no longer has; their tables keep their last schema
}

// sameLayout reports whether files of a and b are interchangeable: the same Parquet schema, the
// same Hive columns, the same message and id field. Rows built with b may then go into a file
// opened with a, and nothing needs rotating or altering (a version that changes nothing in a
// table, or only what does not reach the files: enum values, field numbers, comments).
func sameLayout(a, b *Schema) bool {
	if a.Message.FullName() != b.Message.FullName() || a.IDField != b.IDField || a.Parquet.String() != b.Parquet.String() {
		return false
	}
	return slices.EqualFunc(a.Columns, b.Columns, func(x, y lake.Column) bool {
		return x.Name == y.Name && lake.NormalizeHiveType(x.Type) == lake.NormalizeHiveType(y.Type)
	})
}

// changeKind names how the columns of a table go from old to s (whose layouts differ).
func changeKind(old, s *Schema) string {
	merged, conflicts := lake.MergeColumns(old.Columns, s.Columns)
	switch {
	case len(conflicts) > 0:
		return changeColumnsRetyped
	case len(merged) > len(s.Columns):
		return changeColumnsDropped
	case !slices.Equal(merged, old.Columns):
		return changeColumnsAdded
	}
	return changeOther
}

// next derives the catalog of reg from c.
func (c *catalog) next(reg *registry.Registry) (*catalog, schemaChange, error) {
	ch := schemaChange{changed: map[string]string{}}
	schemas, err := TableSchemas(reg)
	if err != nil {
		return nil, ch, err
	}
	n := &catalog{version: reg.Version(), tables: map[string]*Schema{}, valid: c.valid, dlq: c.dlq}
	for _, s := range schemas {
		n.tables[s.Table] = s
		switch old := c.tables[s.Table]; {
		case old == nil:
			ch.added = append(ch.added, s.Table)
		case !sameLayout(old, s):
			ch.changed[s.Table] = changeKind(old, s)
		}
	}
	for name, s := range c.tables {
		if n.tables[name] == nil {
			// Records of the type may still come (validated before the version); they land
			// with the last schema the type had.
			n.tables[name] = s
			ch.removed = append(ch.removed, name)
		}
	}
	for _, s := range n.tables {
		if s.Table != lake.DeadLettersTable {
			n.ordered = append(n.ordered, s)
		}
	}
	sort.Slice(n.ordered, func(i, j int) bool { return n.ordered[i].Table < n.ordered[j].Table })
	n.ordered = append(n.ordered, n.tables[lake.DeadLettersTable])
	sort.Strings(ch.removed)
	return n, ch, nil
}
