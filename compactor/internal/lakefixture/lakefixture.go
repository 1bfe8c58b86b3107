// Package lakefixture writes lake Parquet files the way the lakewriter does, for the compactor's
// tests and benchmarks: a table schema derived from an event's protobuf message by the lake
// contract's type mapping (nested messages as optional groups, repeated fields as LISTs, maps as
// MAPs, enums as strings, Timestamps as TIMESTAMP(MICROS, UTC), unsigned integers widened,
// fields with presence optional, fields in message order), then the system columns, written with
// parquet-go and zstd. It mirrors the shape of lakewriter/testdata/schema/*.golden.
package lakefixture

import (
	"fmt"
	"io"
	"reflect"
	"time"

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

// Schema is the lake table schema of md, fields in message order, then the system columns.
func Schema(md protoreflect.MessageDescriptor) *parquet.Schema {
	g := group(md)
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

func group(md protoreflect.MessageDescriptor) ordered {
	var g ordered
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		g = append(g, field{string(fd.Name()), fieldNode(fd)})
	}
	return g
}

func fieldNode(fd protoreflect.FieldDescriptor) parquet.Node {
	switch {
	case fd.IsMap():
		return parquet.Map(leaf(fd.MapKey()), valueNode(fd.MapValue()))
	case fd.IsList():
		return parquet.List(valueNode(fd))
	case fd.Kind() == protoreflect.MessageKind || fd.HasPresence():
		return parquet.Optional(valueNode(fd))
	}
	return valueNode(fd)
}

func valueNode(fd protoreflect.FieldDescriptor) parquet.Node {
	if fd.Kind() == protoreflect.MessageKind {
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			return parquet.Timestamp(parquet.Microsecond)
		}
		return group(fd.Message())
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
func Write(w io.Writer, schema *parquet.Schema, rows []map[string]any, rowGroupRows int64) error {
	pw := parquet.NewGenericWriter[map[string]any](w, schema, parquet.Compression(&zstd.Codec{}), parquet.MaxRowsPerRowGroup(rowGroupRows))
	if _, err := pw.Write(rows); err != nil {
		return err
	}
	return pw.Close()
}
