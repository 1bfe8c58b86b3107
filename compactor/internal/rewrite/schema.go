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

// ErrSchema means the input files cannot be rewritten without losing data or changing what they
// hold: two files disagree on a column's type, or the Parquet schema the writer would produce
// for a file's columns differs from the one the file has. The partition is left as it is.
var ErrSchema = errors.New("schema cannot be preserved")

// unify returns the schema of the compacted files: the columns of schemas[base] (the newest
// file's), then those only other files have, in the order first met; inside struct columns
// (also as list elements and map values) the same rule applies to their fields. The lake's
// schema evolution only adds nullable columns and fields, so for the newest file this is its
// own schema. A column present in several files must have the same type and metadata in each.
// It is nullable when any file has it nullable (required to optional loses nothing) or lacks it:
// the rows of a file written before a field existed read it as null. (Proto3 fields without
// presence are required columns, so a field a newer version added is required in the newer
// files and becomes optional in the compacted ones.)
func unify(schemas []*arrow.Schema, base int) (*arrow.Schema, error) {
	fields := slices.Clone(schemas[base].Fields())
	for i, s := range schemas {
		if i == base {
			continue
		}
		var err error
		if fields, err = mergeFields(fields, s.Fields(), ""); err != nil {
			return nil, err
		}
	}
	return arrow.NewSchema(fields, nil), nil
}

// mergeFields merges the fields of one file (or struct) into into, by name. Fields only one
// side has become nullable.
func mergeFields(into, more []arrow.Field, prefix string) ([]arrow.Field, error) {
	out := slices.Clone(into)
	for i, f := range out {
		if !slices.ContainsFunc(more, func(g arrow.Field) bool { return g.Name == f.Name }) {
			out[i].Nullable = true
		}
	}
	for _, f := range more {
		i := slices.IndexFunc(out, func(g arrow.Field) bool { return g.Name == f.Name })
		if i < 0 {
			f.Nullable = true
			out = append(out, f)
			continue
		}
		m, err := mergeField(out[i], f, prefix+f.Name)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

// mergeField merges two columns of the same name: structs gain the fields only one side has,
// lists and maps merge their elements and values, and anything else must be the same type.
func mergeField(a, b arrow.Field, path string) (arrow.Field, error) {
	conflict := func() error {
		return fmt.Errorf("%w: column %s is %s in one file and %s in another", ErrSchema, path, a.Type, b.Type)
	}
	if !a.Metadata.Equal(b.Metadata) {
		return a, fmt.Errorf("%w: column %s has metadata %v in one file and %v in another", ErrSchema, path, a.Metadata, b.Metadata)
	}
	out := a
	out.Nullable = a.Nullable || b.Nullable
	if a.Type.ID() != b.Type.ID() {
		return a, conflict()
	}
	switch at := a.Type.(type) {
	case *arrow.StructType:
		fields, err := mergeFields(at.Fields(), b.Type.(*arrow.StructType).Fields(), path+".")
		if err != nil {
			return a, err
		}
		out.Type = arrow.StructOf(fields...)
	case *arrow.ListType:
		elem, err := mergeField(at.ElemField(), b.Type.(*arrow.ListType).ElemField(), path+"[]")
		if err != nil {
			return a, err
		}
		out.Type = arrow.ListOfField(elem)
	case *arrow.LargeListType:
		elem, err := mergeField(at.ElemField(), b.Type.(*arrow.LargeListType).ElemField(), path+"[]")
		if err != nil {
			return a, err
		}
		out.Type = arrow.LargeListOfField(elem)
	case *arrow.MapType:
		bt := b.Type.(*arrow.MapType)
		if !at.KeyField().Equal(bt.KeyField()) || at.KeysSorted != bt.KeysSorted || at.KeyField().Nullable {
			// Map keys never gain fields; a nullable key (not from Parquet) is only taken as is.
			if !arrow.TypeEqual(a.Type, b.Type, arrow.CheckMetadata()) {
				return a, conflict()
			}
			return out, nil
		}
		item, err := mergeField(at.ItemField(), bt.ItemField(), path+"{}")
		if err != nil {
			return a, err
		}
		m := arrow.MapOfFields(at.KeyField(), item)
		m.KeysSorted = at.KeysSorted
		out.Type = m
	default:
		if !arrow.TypeEqual(a.Type, b.Type, arrow.CheckMetadata()) {
			return a, conflict()
		}
	}
	return out, nil
}

// childFields are the fields nested in t: a struct's fields, a list's element or a map's value.
func childFields(t arrow.DataType) []arrow.Field {
	switch t := t.(type) {
	case *arrow.StructType:
		return t.Fields()
	case *arrow.ListType:
		return []arrow.Field{t.ElemField()}
	case *arrow.LargeListType:
		return []arrow.Field{t.ElemField()}
	case *arrow.MapType:
		return []arrow.Field{t.ItemField()}
	}
	return nil
}

// conformer turns the batches of one file into batches of the target schema.
type conformer struct {
	target *arrow.Schema
	from   []int // index of each target column in the file, or -1
	same   bool  // the file's columns are the target's, in order and of the same types
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
		if idx[0] != i || !arrow.TypeEqual(file.Field(idx[0]).Type, f.Type) {
			c.same = false
		}
	}
	return c
}

// conform returns rec with the target's columns; missing ones are all null, and struct fields a
// column lacks (at any depth) are all null too. The caller owns the result and still owns rec.
func (c conformer) conform(mem memory.Allocator, rec arrow.RecordBatch) arrow.RecordBatch {
	if c.same {
		cols := rec.Columns()
		return array.NewRecordBatch(c.target, cols, rec.NumRows())
	}
	cols := make([]arrow.Array, len(c.from))
	for i, j := range c.from {
		want := c.target.Field(i).Type
		switch {
		case j < 0:
			cols[i] = array.MakeArrayOfNull(mem, want, int(rec.NumRows()))
			defer cols[i].Release()
		case arrow.TypeEqual(rec.Column(j).DataType(), want):
			cols[i] = rec.Column(j)
		default:
			d := conformData(mem, rec.Column(j).Data(), want)
			cols[i] = array.MakeFromData(d)
			d.Release()
			defer cols[i].Release()
		}
	}
	return array.NewRecordBatch(c.target, cols, rec.NumRows())
}

// conformData returns d as type to, which unify made from d's type: the same buffers, with
// all-null children for the struct fields d lacks. Nothing is copied but the new null children.
// The caller releases the result.
func conformData(mem memory.Allocator, d arrow.ArrayData, to arrow.DataType) arrow.ArrayData {
	if arrow.TypeEqual(d.DataType(), to) {
		d.Retain()
		return d
	}
	var children []arrow.ArrayData
	switch tt := to.(type) {
	case *arrow.StructType:
		from := d.DataType().(*arrow.StructType)
		for _, f := range tt.Fields() {
			j, ok := from.FieldIdx(f.Name)
			if !ok {
				// Children are read from the parent's offset on: cover it.
				null := array.MakeArrayOfNull(mem, f.Type, d.Offset()+d.Len())
				nd := null.Data()
				nd.Retain()
				null.Release()
				children = append(children, nd)
				continue
			}
			children = append(children, conformData(mem, d.Children()[j], f.Type))
		}
	case *arrow.ListType, *arrow.LargeListType, *arrow.MapType:
		// The offsets index the whole child, which keeps its length and offset.
		elem := tt.(arrow.ListLikeType).Elem()
		children = append(children, conformData(mem, d.Children()[0], elem))
	default:
		// Same physical layout, only the type object differs (nullability of nested fields).
		children = d.Children()
		for _, ch := range children {
			ch.Retain()
		}
	}
	out := array.NewData(to, d.Len(), d.Buffers(), children, d.NullN(), d.Offset())
	for _, ch := range children {
		ch.Release()
	}
	return out
}

// sameParquetTree reports how node a (from an input file) differs from node b (what the writer
// produces for the same column), or "" when the output holds a's values as a reader sees them:
// the same names, physical, logical and converted types, lengths, field ids and structure. The
// output may have more: fields a group of a lacks (a newer version of the schema added them; a's
// rows read them as null), and OPTIONAL where a is REQUIRED.
func sameParquetTree(a, b schema.Node, path string) string {
	if a.Name() != b.Name() {
		return fmt.Sprintf("%s: name %q, would be %q", path, a.Name(), b.Name())
	}
	if ar, br := a.RepetitionType(), b.RepetitionType(); ar != br && (ar != parquet.Repetitions.Required || br != parquet.Repetitions.Optional) {
		return fmt.Sprintf("%s: repetition %s, would be %s", path, ar, br)
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
		for i := range an.NumFields() {
			f := an.Field(i)
			j := bn.FieldIndexByName(f.Name())
			if j < 0 {
				return fmt.Sprintf("%s.%s: would be dropped", path, f.Name())
			}
			if d := sameParquetTree(f, bn.Field(j), path+"."+f.Name()); d != "" {
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
