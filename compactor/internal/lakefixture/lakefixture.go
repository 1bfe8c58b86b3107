// Package lakefixture writes lake Parquet files the way the lakewriter does, for the compactor's
// tests and benchmarks: a table schema derived from an event's protobuf message by the lake
// contract's type mapping (nested messages as optional groups, repeated fields as LISTs, maps as
// MAPs, enums as strings, Timestamps as TIMESTAMP(MICROS, UTC), unsigned integers widened,
// fields with presence optional, fields in message order), then the system columns, written with
// parquet-go and zstd. It mirrors the shape of lakewriter/testdata/schema/*.golden.
package lakefixture

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// System are the values of a row's system columns.
type System struct {
	ReceivedAt     time.Time
	ReqGUID        string
	EventIndex     int32
	ConnGroup      string
	KafkaPartition int32
	KafkaOffset    int64
}

// Schema is the lake table schema of md, fields in message order, then the system columns. The
// fields named in without are left out (an older version of the message); a name may reach into
// nested messages, repeated ones included ("context.device.locale", "items.currency").
func Schema(md protoreflect.MessageDescriptor, without ...string) *parquet.Schema {
	g := group(md, without, "")
	g = append(g,
		field{"_received_at", parquet.Timestamp(parquet.Microsecond)},
		field{"_req_guid", parquet.String()},
		field{"_event_index", parquet.Optional(parquet.Int(32))},
		field{"_conn_group", parquet.String()},
		field{"_kafka_partition", parquet.Int(32)},
		field{"_kafka_offset", parquet.Int(64)},
	)
	return parquet.NewSchema(string(md.Name()), g)
}

// ordered is a Parquet group that keeps its fields in the order given (parquet.Group sorts
// them by name; the lakewriter keeps the message's order).
type ordered []parquet.Field

type field struct {
	name string
	parquet.Node
}

func (f field) Name() string                      { return f.name }
func (f field) Value(reflect.Value) reflect.Value { return reflect.Value{} }

func (g ordered) ID() int                     { return 0 }
func (g ordered) String() string              { return parquet.NewSchema("group", g).String() }
func (g ordered) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g ordered) Optional() bool              { return false }
func (g ordered) Repeated() bool              { return false }
func (g ordered) Required() bool              { return true }
func (g ordered) Leaf() bool                  { return false }
func (g ordered) Fields() []parquet.Field     { return g }
func (g ordered) Encoding() encoding.Encoding { return nil }
func (g ordered) Compression() compress.Codec { return nil }
func (g ordered) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

// group is the Parquet group of md, without the fields named in without; prefix is the dotted
// path of md's field ("" at the top).
func group(md protoreflect.MessageDescriptor, without []string, prefix string) ordered {
	var g ordered
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		if slices.Contains(without, name) {
			continue
		}
		g = append(g, field{string(fd.Name()), fieldNode(fd, without, name+".")})
	}
	return g
}

func fieldNode(fd protoreflect.FieldDescriptor, without []string, prefix string) parquet.Node {
	switch {
	case fd.IsMap():
		return parquet.Map(leaf(fd.MapKey()), valueNode(fd.MapValue(), without, prefix))
	case fd.IsList():
		return parquet.List(valueNode(fd, without, prefix))
	case fd.Kind() == protoreflect.MessageKind || fd.HasPresence():
		return parquet.Optional(valueNode(fd, without, prefix))
	}
	return valueNode(fd, without, prefix)
}

func valueNode(fd protoreflect.FieldDescriptor, without []string, prefix string) parquet.Node {
	if fd.Kind() == protoreflect.MessageKind {
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			return parquet.Timestamp(parquet.Microsecond)
		}
		return group(fd.Message(), without, prefix)
	}
	return leaf(fd)
}

func leaf(fd protoreflect.FieldDescriptor) parquet.Node {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return parquet.Leaf(parquet.BooleanType)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return parquet.Int(32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return parquet.Int(64) // Hive has no unsigned types
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return parquet.Decimal(0, 20, parquet.FixedLenByteArrayType(9))
	case protoreflect.FloatKind:
		return parquet.Leaf(parquet.FloatType)
	case protoreflect.DoubleKind:
		return parquet.Leaf(parquet.DoubleType)
	case protoreflect.BytesKind:
		return parquet.Leaf(parquet.ByteArrayType)
	}
	return parquet.String() // strings and enums
}

// Row is the lake row of m with the system columns sys, as parquet-go writes it into Schema.
func Row(m proto.Message, sys System) map[string]any {
	row := message(m.ProtoReflect())
	row["_received_at"] = sys.ReceivedAt
	row["_req_guid"] = sys.ReqGUID
	row["_event_index"] = sys.EventIndex
	row["_conn_group"] = sys.ConnGroup
	row["_kafka_partition"] = sys.KafkaPartition
	row["_kafka_offset"] = sys.KafkaOffset
	return row
}

func message(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		out[string(fd.Name())] = fieldValue(m, fd)
	}
	return out
}

func fieldValue(m protoreflect.Message, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsMap():
		out := map[string]string{}
		m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			out[k.String()] = fmt.Sprint(value(fd.MapValue(), v))
			return true
		})
		return out
	case fd.IsList():
		l := m.Get(fd).List()
		out := make([]any, l.Len())
		for i := range l.Len() {
			out[i] = value(fd, l.Get(i))
		}
		return out
	case (fd.Kind() == protoreflect.MessageKind || fd.HasPresence()) && !m.Has(fd):
		return nil
	}
	return value(fd, m.Get(fd))
}

func value(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		msg := v.Message()
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			f := msg.Descriptor().Fields()
			return time.Unix(msg.Get(f.ByName("seconds")).Int(), msg.Get(f.ByName("nanos")).Int()).UTC()
		}
		return message(msg)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(int32(v.Enum()))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return int32(v.Int())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return int64(v.Uint())
	case protoreflect.FloatKind:
		return float32(v.Float())
	}
	return v.Interface()
}

// Write writes rows into w as one Parquet file of schema, zstd, one row group per rowGroupRows.
// Fields of rows that schema lacks are not written.
func Write(w io.Writer, schema *parquet.Schema, rows []map[string]any, rowGroupRows int64) error {
	return WriteMetadata(w, schema, rows, rowGroupRows, nil)
}

// WriteMetadata is Write with more key-value metadata, such as the lakewriter's
// clickstream.id_field and clickstream.schema_version.
func WriteMetadata(w io.Writer, schema *parquet.Schema, rows []map[string]any, rowGroupRows int64, metadata map[string]string) error {
	opts := []parquet.WriterOption{schema, parquet.Compression(&zstd.Codec{}), parquet.MaxRowsPerRowGroup(rowGroupRows),
		parquet.KeyValueMetadata("clickstream.message", schema.Name()), parquet.KeyValueMetadata("clickstream.rows", fmt.Sprint(len(rows)))}
	keys := slices.Sorted(maps.Keys(metadata))
	for _, k := range keys {
		opts = append(opts, parquet.KeyValueMetadata(k, metadata[k]))
	}
	pw := parquet.NewGenericWriter[map[string]any](w, opts...)
	if _, err := pw.Write(rows); err != nil {
		return err
	}
	return pw.Close()
}

// ReadRows reads every row of a Parquet file with Arrow, each as the JSON object Arrow renders
// for it (timestamps as strings), so that rows of different files compare as values. With
// columns (top-level primitive columns), only those are read.
func ReadRows(r io.ReaderAt, size int64, columns ...string) ([]map[string]any, error) {
	pr, err := file.NewParquetReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 1000}, memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	var leaves []int
	for _, c := range columns {
		i := pr.MetaData().Schema.ColumnIndexByName(c)
		if i < 0 {
			return nil, fmt.Errorf("no column %s", c)
		}
		leaves = append(leaves, i)
	}
	rr, err := fr.GetRecordReader(context.Background(), leaves, nil)
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	var out []map[string]any
	for rr.Next() {
		var buf bytes.Buffer
		if err := array.RecordToJSON(rr.RecordBatch(), &buf); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return out, nil
}

// Distinct is what compaction must make of rows read in order: the first row of each event_id,
// sorted by user_id, event_time and event_id.
func Distinct(rows []map[string]any) []map[string]any {
	seen := map[string]bool{}
	var out []map[string]any
	for _, r := range rows {
		id, _ := r["event_id"].(string)
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, r)
	}
	str := func(r map[string]any, k string) string { s, _ := r[k].(string); return s }
	slices.SortStableFunc(out, func(a, b map[string]any) int {
		return cmp.Or(
			strings.Compare(str(a, "user_id"), str(b, "user_id")),
			strings.Compare(str(a, "event_time"), str(b, "event_time")),
			strings.Compare(str(a, "event_id"), str(b, "event_id")))
	})
	return out
}

// Diff describes the first difference between two row lists, or returns "".
func Diff(want, got []map[string]any) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		w, _ := json.Marshal(want[i])
		g, _ := json.Marshal(got[i])
		if !bytes.Equal(w, g) {
			return fmt.Sprintf("row %d:\n got %s\nwant %s", i, g, w)
		}
	}
	return ""
}
