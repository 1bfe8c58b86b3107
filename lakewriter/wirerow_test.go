package lakewriter

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
)

var wireSys = sysValues{receivedAt: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), reqGUID: "g", hasIndex: true, eventIndex: 3, connGroup: "web", partition: 2, offset: 9, replayed: true}

// sameValue compares two Parquet values: kind, levels, column and content bit for bit (so that
// a NaN equals the same NaN).
func sameValue(a, b parquet.Value) bool {
	return a.Kind() == b.Kind() && a.IsNull() == b.IsNull() && a.RepetitionLevel() == b.RepetitionLevel() &&
		a.DefinitionLevel() == b.DefinitionLevel() && a.Column() == b.Column() && bytes.Equal(a.Bytes(), b.Bytes())
}

// wireMatches checks the wire path against the reflective path on one encoded record. It returns
// whether the wire path handled it. Whatever it handles, proto.Unmarshal must accept and the
// rows must be identical.
func wireMatches(t testing.TB, s *Schema, data []byte) bool {
	t.Helper()
	wire, ok := s.newRowBuilder().buildWire(data, wireSys)
	msg := s.newMessage()
	err := unmarshalNoPanic(data, msg)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("the wire path wrote a row for a record proto.Unmarshal refuses (%v): %x", err, data)
	}
	want := s.newRowBuilder().build(msg.ProtoReflect(), wireSys)
	if len(wire) != len(want) {
		t.Fatalf("wire row has %d values, reflective %d\nwire %v\nrefl %v\ndata %x", len(wire), len(want), wire, want, data)
	}
	for i := range want {
		if !sameValue(wire[i], want[i]) {
			t.Fatalf("value %d: wire %v (r%d d%d c%d), reflective %v (r%d d%d c%d)\ndata %x", i,
				wire[i], wire[i].RepetitionLevel(), wire[i].DefinitionLevel(), wire[i].Column(),
				want[i], want[i].RepetitionLevel(), want[i].DefinitionLevel(), want[i].Column(), data)
		}
	}
	return true
}

func TestWireRowMatchesReflection(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		s, err := NewSchema(typ, et.Message)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			if !wireMatches(t, s, samples.Marshal(samples.Event(typ, i, at))) {
				t.Fatalf("%s #%d: the wire path gave up on a well-formed sample", typ, i)
			}
		}
	}
	fd := kindsFile(t)
	s, err := NewSchema("kinds", fd.Messages().ByName("Kinds"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range everyKindMessages(fd) {
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !wireMatches(t, s, data) {
			t.Fatalf("every-kind message %d: the wire path gave up", i)
		}
	}
}

// TestWireRowEncodings covers what the encoder of this project never writes but other producers
// may: unpacked repeated scalars, a field sent twice, oneof members overriding each other,
// duplicate map keys, unknown fields, and the cases that must take the reflective path.
func TestWireRowEncodings(t *testing.T) {
	fd := kindsFile(t)
	md := fd.Messages().ByName("Kinds")
	s, err := NewSchema("kinds", md)
	if err != nil {
		t.Fatal(err)
	}
	num := func(name string) protowire.Number { return md.Fields().ByName(protoreflect.Name(name)).Number() }
	varint := func(b []byte, name string, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(b, num(name), protowire.VarintType), v)
	}
	str := func(b []byte, name string, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num(name), protowire.BytesType), v)
	}
	entry := func(key, value []byte) []byte { // map<string, Inner> entry with an Inner named value
		e := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), key)
		inner := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), value)
		return protowire.AppendBytes(protowire.AppendTag(e, 2, protowire.BytesType), inner)
	}
	cases := []struct {
		name string
		data []byte
		wire bool // the wire path handles it (else the reflective path must)
	}{
		{"unpacked repeated enum", varint(varint(varint(nil, "colors", 1), "colors", 42), "colors", 0), true},
		{"packed and unpacked mixed", str(varint(nil, "colors", 1), "colors", protowire.AppendVarint(protowire.AppendVarint(nil, 0), 1)), true},
		{"scalar sent twice: the last wins", varint(varint(nil, "i32", 5), "i32", 6), true},
		{"oneof members override", str(varint(nil, "maybe", 3), "text", []byte("x")), true},
		{"oneof: the first member again", varint(str(str(nil, "text", []byte("x")), "nested", nil), "maybe", 7), true},
		{"duplicate map keys: the last wins", str(str(nil, "by_name", entry([]byte("k"), []byte("first"))), "by_name", entry([]byte("k"), []byte("second"))), true},
		{"map keys out of order", str(str(nil, "by_name", entry([]byte("z"), nil)), "by_name", entry([]byte("a"), nil)), true},
		{"unknown field", protowire.AppendVarint(protowire.AppendTag(varint(nil, "b", 1), 999, protowire.VarintType), 1), true},
		{"negative int32 as a 10-byte varint", varint(nil, "i32", uint64(1<<64-5)), true},
		{"singular message sent twice: proto merges", str(str(nil, "inner", str(nil, "inner", nil)[2:]), "inner", nil), false},
		{"mistyped field: proto keeps it unknown", str(nil, "i32", []byte("x")), false},
		{"invalid UTF-8", str(nil, "s", []byte{0xff, 0xfe}), false},
		{"truncated", varint(nil, "i64", 1<<40)[:3], false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := wireMatches(t, s, c.data); got != c.wire {
				t.Fatalf("wire path handled it: %v, want %v", got, c.wire)
			}
		})
	}
}

// FuzzWireRow: on any input, a row from the wire path is exactly the reflective path's row, and
// the wire path never accepts what proto.Unmarshal refuses.
func FuzzWireRow(f *testing.F) {
	fd := kindsFile(f)
	s, err := NewSchema("kinds", fd.Messages().ByName("Kinds"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range everyKindMessages(fd) {
		data, _ := proto.Marshal(m)
		f.Add(data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		wireMatches(t, s, data)
	})
}

// TestWireRowWrite writes the same records through both paths into Parquet files and compares
// the bytes: the wire path is a drop-in.
func TestWireRowWrite(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	et, _ := registry.Default().Lookup("page_view")
	s, err := NewSchema("page_view", et.Message)
	if err != nil {
		t.Fatal(err)
	}
	var viaWire, viaReflection bytes.Buffer
	fw, fr := newParquetFile(&viaWire, s, 1<<20, 64<<20), newParquetFile(&viaReflection, s, 1<<20, 64<<20)
	rb := s.newRowBuilder()
	for i := range 500 {
		data := samples.Marshal(samples.Event("page_view", i, at))
		row, ok := rb.buildWire(data, wireSys)
		if !ok {
			t.Fatalf("#%d: the wire path gave up", i)
		}
		if err := fw.writeRow(row); err != nil {
			t.Fatal(err)
		}
		msg := s.newMessage()
		if err := proto.Unmarshal(data, msg); err != nil {
			t.Fatal(err)
		}
		if err := fr.writeRow(rb.build(msg.ProtoReflect(), wireSys)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []*parquetFile{fw, fr} {
		if err := f.close(lakeFileForTest(), s); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(viaWire.Bytes(), viaReflection.Bytes()) {
		t.Fatalf("files differ: %d vs %d bytes", viaWire.Len(), viaReflection.Len())
	}
}

func lakeFileForTest() lake.DataFile {
	return lake.DataFile{Topic: "t", Partition: 1, FirstOffset: 0, LastOffset: 499}
}

// unmarshalNoPanic is proto.Unmarshal with dynamicpb's panic on a map entry whose key has the
// wrong wire type (a protobuf-go bug, reachable with dynamic schemas only) turned into an error.
func unmarshalNoPanic(data []byte, m proto.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("proto.Unmarshal panicked: %v", r)
		}
	}()
	return proto.Unmarshal(data, m)
}

// TestWireRowProto3Only: a proto2 schema (required fields, closed enums) always takes the
// reflective path, which knows those rules.
func TestWireRowProto3Only(t *testing.T) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("p2.proto"), Package: proto.String("p2"), Syntax: proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Old"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("id"), Number: proto.Int32(1),
				Label: descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSchema("old", fd.Messages().ByName("Old"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.newRowBuilder().buildWire(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5), wireSys); ok {
		t.Fatal("the wire path built a row of a proto2 message")
	}
	// The record without its required field: proto refuses it, so must the wire path.
	if wireMatches(t, s, nil) {
		t.Fatal("the wire path accepted a proto2 record")
	}
}
