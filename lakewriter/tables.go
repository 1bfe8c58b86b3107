package lakewriter

import (
	"fmt"
	"regexp"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/lake"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
)

// TableSchemas derives the schema of every table: one per event type of reg (named after the
// type), plus dead_letters from clickstream.v1.DeadLetter.
func TableSchemas(reg *registry.Registry) ([]*Schema, error) {
	var out []*Schema
	for _, et := range reg.Types() {
		s, err := NewSchema(et.Name, et.Message)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", et.Name, err)
		}
		out = append(out, s)
	}
	dl, err := NewSchema(lake.DeadLettersTable, (&clickstreamv1.DeadLetter{}).ProtoReflect().Descriptor())
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", lake.DeadLettersTable, err)
	}
	return append(out, dl), nil
}

// catalog maps consumed topics to tables.
type catalog struct {
	tables  map[string]*Schema // by table name
	valid   *regexp.Regexp     // captures the event type
	dlq     string
	ordered []*Schema
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
	c := &catalog{tables: map[string]*Schema{}, valid: re, dlq: dlqTopic, ordered: schemas}
	for _, s := range schemas {
		c.tables[s.Table] = s
	}
	return c, nil
}

// forTopic returns the table a topic lands in; ok is false for a topic of an event type this
// build does not know (its records are not consumed until the registry has it).
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
