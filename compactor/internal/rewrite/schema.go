package rewrite

import (
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/schema"
)

// ErrSchema means the input files cannot be rewritten without changing their schema: two files
// disagree on a column's type, or the Parquet schema the writer would produce differs from the
// one the files have. The partition is left as it is.
var ErrSchema = errors.New("schema cannot be preserved")

// unify returns the schema of the compacted files: the columns of the widest file (the newest
// of the widest, since the lake's schema evolution only adds nullable columns), then any column
// only older files have. A column present in several files must have the same type,
// nullability and metadata in each; a column some files lack must be nullable.
func unify(schemas []*arrow.Schema) (*arrow.Schema, error) {
	base := 0
	for i, s := range schemas {
		if s.NumFields() >= schemas[base].NumFields() {
			base = i
		}
	}
	fields := slices.Clone(schemas[base].Fields())
	index := map[string]int{}
	for i, f := range fields {
		index[f.Name] = i
	}
	for _, s := range schemas {
		for _, f := range s.Fields() {
			i, ok := index[f.Name]
			if !ok {
				index[f.Name] = len(fields)
				fields = append(fields, f)
				continue
			}
			if !fields[i].Equal(f) {
				return nil, fmt.Errorf("%w: column %s is %s in one file and %s in another", ErrSchema, f.Name, fields[i], f)
			}
		}
	}
	for _, s := range schemas {
		for _, f := range fields {
			if !s.HasField(f.Name) && !f.Nullable {
				return nil, fmt.Errorf("%w: required column %s is missing from some files", ErrSchema, f.Name)
			}
		}
	}
	return arrow.NewSchema(fields, nil), nil
}

// conformer turns the batches of one file into batches of the target schema.
type conformer struct {
	target *arrow.Schema
	from   []int // index of each target column in the file, or -1
	same   bool
}

func newConformer(file, target *arrow.Schema) conformer {
	c := conformer{target: target, from: make([]int, target.NumFields()), same: file.NumFields() == target.NumFields()}
	for i, f := range target.Fields() {
		idx := file.FieldIndices(f.Name)
		if len(idx) == 0 {
			c.from[i] = -1
			c.same = false
			continue
		}
		c.from[i] = idx[0]
		if idx[0] != i {
			c.same = false
		}
	}
	return c
}

// conform returns rec with the target's columns; missing ones are all null. The caller owns the
// result and still owns rec.
func (c conformer) conform(mem memory.Allocator, rec arrow.RecordBatch) arrow.RecordBatch {
	if c.same {
		cols := rec.Columns()
		return array.NewRecordBatch(c.target, cols, rec.NumRows())
	}
	cols := make([]arrow.Array, len(c.from))
	for i, j := range c.from {
		if j < 0 {
			cols[i] = array.MakeArrayOfNull(mem, c.target.Field(i).Type, int(rec.NumRows()))
			defer cols[i].Release()
			continue
		}
		cols[i] = rec.Column(j)
	}
	return array.NewRecordBatch(c.target, cols, rec.NumRows())
}

// sameParquetTree reports how node a (from an input file) differs from node b (what the writer
// produces for the same column), or "" when they are the same in everything a reader sees:
// names, repetition, physical, logical and converted types, lengths, field ids and structure.
func sameParquetTree(a, b schema.Node, path string) string {
	if a.Name() != b.Name() {
		return fmt.Sprintf("%s: name %q, would be %q", path, a.Name(), b.Name())
	}
	if a.RepetitionType() != b.RepetitionType() {
		return fmt.Sprintf("%s: repetition %s, would be %s", path, a.RepetitionType(), b.RepetitionType())
	}
	if a.FieldID() != b.FieldID() {
		return fmt.Sprintf("%s: field id %d, would be %d", path, a.FieldID(), b.FieldID())
	}
	if a.ConvertedType() != b.ConvertedType() {
		return fmt.Sprintf("%s: converted type %s, would be %s", path, a.ConvertedType(), b.ConvertedType())
	}
	if !a.LogicalType().Equals(b.LogicalType()) {
		return fmt.Sprintf("%s: logical type %s, would be %s", path, a.LogicalType(), b.LogicalType())
	}
	switch an := a.(type) {
	case *schema.PrimitiveNode:
		bn, ok := b.(*schema.PrimitiveNode)
		if !ok {
			return fmt.Sprintf("%s: a primitive column, would be a group", path)
		}
		fixed := an.PhysicalType() == parquet.Types.FixedLenByteArray
		if an.PhysicalType() != bn.PhysicalType() || fixed && an.TypeLength() != bn.TypeLength() {
			return fmt.Sprintf("%s: physical type %s(%d), would be %s(%d)", path, an.PhysicalType(), an.TypeLength(), bn.PhysicalType(), bn.TypeLength())
		}
	case *schema.GroupNode:
		bn, ok := b.(*schema.GroupNode)
		if !ok {
			return fmt.Sprintf("%s: a group, would be a primitive column", path)
		}
		if an.NumFields() != bn.NumFields() {
			return fmt.Sprintf("%s: %d fields, would be %d", path, an.NumFields(), bn.NumFields())
		}
		for i := range an.NumFields() {
			if d := sameParquetTree(an.Field(i), bn.Field(i), path+"."+an.Field(i).Name()); d != "" {
				return d
			}
		}
	}
	return ""
}

// checkParquetSchema compares every top-level column of an input file's Parquet schema with the
// one the writer produces for the unified Arrow schema.
func checkParquetSchema(name string, in, out *schema.Schema) error {
	inRoot, outRoot := in.Root(), out.Root()
	for i := range inRoot.NumFields() {
		f := inRoot.Field(i)
		j := outRoot.FieldIndexByName(f.Name())
		if j < 0 {
			return fmt.Errorf("%w: %s: column %s would be dropped", ErrSchema, name, f.Name())
		}
		if d := sameParquetTree(f, outRoot.Field(j), f.Name()); d != "" {
			return fmt.Errorf("%w: %s: %s", ErrSchema, name, d)
		}
	}
	return nil
}
