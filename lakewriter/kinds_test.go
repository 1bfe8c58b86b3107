package lakewriter

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// kindsFile declares a message with a field of every kind the mapping covers, built in code so
// that the example schemas need not grow for the test.
func kindsFile(t testing.TB) protoreflect.FileDescriptor {
	t.Helper()
	type F = descriptorpb.FieldDescriptorProto
	T := func(x descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto_Type { return &x }
	L := func(x descriptorpb.FieldDescriptorProto_Label) *descriptorpb.FieldDescriptorProto_Label { return &x }
	opt, rep := L(descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL), L(descriptorpb.FieldDescriptorProto_LABEL_REPEATED)
	n := 0
	field := func(name string, typ descriptorpb.FieldDescriptorProto_Type, label *descriptorpb.FieldDescriptorProto_Label, typeName string) *F {
		n++
		f := &F{Name: proto.String(name), Number: proto.Int32(int32(n)), Type: T(typ), Label: label, JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	const (
		tBool    = descriptorpb.FieldDescriptorProto_TYPE_BOOL
		tInt32   = descriptorpb.FieldDescriptorProto_TYPE_INT32
		tSint32  = descriptorpb.FieldDescriptorProto_TYPE_SINT32
		tSfix32  = descriptorpb.FieldDescriptorProto_TYPE_SFIXED32
		tInt64   = descriptorpb.FieldDescriptorProto_TYPE_INT64
		tSint64  = descriptorpb.FieldDescriptorProto_TYPE_SINT64
		tSfix64  = descriptorpb.FieldDescriptorProto_TYPE_SFIXED64
		tUint32  = descriptorpb.FieldDescriptorProto_TYPE_UINT32
		tFix32   = descriptorpb.FieldDescriptorProto_TYPE_FIXED32
		tUint64  = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		tFix64   = descriptorpb.FieldDescriptorProto_TYPE_FIXED64
		tFloat   = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
		tDouble  = descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
		tString  = descriptorpb.FieldDescriptorProto_TYPE_STRING
		tBytes   = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		tEnum    = descriptorpb.FieldDescriptorProto_TYPE_ENUM
		tMessage = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	mapEntry := func(name string, k, v *F) *descriptorpb.DescriptorProto {
		k.Name, k.Number, k.JsonName = proto.String("key"), proto.Int32(1), proto.String("key")
		v.Name, v.Number, v.JsonName = proto.String("value"), proto.Int32(2), proto.String("value")
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: []*F{k, v}, Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}}
	}
	kinds := &descriptorpb.DescriptorProto{Name: proto.String("Kinds")}
	for _, f := range []*F{
		field("b", tBool, opt, ""), field("i32", tInt32, opt, ""), field("s32", tSint32, opt, ""), field("sf32", tSfix32, opt, ""),
		field("i64", tInt64, opt, ""), field("s64", tSint64, opt, ""), field("sf64", tSfix64, opt, ""),
		field("u32", tUint32, opt, ""), field("f32", tFix32, opt, ""), field("u64", tUint64, opt, ""), field("f64", tFix64, opt, ""),
		field("fl", tFloat, opt, ""), field("d", tDouble, opt, ""), field("s", tString, opt, ""), field("by", tBytes, opt, ""),
		field("color", tEnum, opt, ".kinds.Color"), field("ts", tMessage, opt, ".google.protobuf.Timestamp"),
		field("inner", tMessage, opt, ".kinds.Inner"), field("inners", tMessage, rep, ".kinds.Inner"),
		field("colors", tEnum, rep, ".kinds.Color"), field("times", tMessage, rep, ".google.protobuf.Timestamp"),
		field("by_int", tMessage, rep, ".kinds.Kinds.ByIntEntry"), field("by_name", tMessage, rep, ".kinds.Kinds.ByNameEntry"),
		field("flags", tMessage, rep, ".kinds.Kinds.FlagsEntry"), field("ds", tDouble, rep, ""),
	} {
		kinds.Field = append(kinds.Field, f)
	}
	maybe := field("maybe", tInt64, opt, "")
	maybe.Proto3Optional, maybe.OneofIndex = proto.Bool(true), proto.Int32(1)
	text := field("text", tString, opt, "")
	text.OneofIndex = proto.Int32(0)
	nested := field("nested", tMessage, opt, ".kinds.Inner")
	nested.OneofIndex = proto.Int32(0)
	kinds.Field = append(kinds.Field, maybe, text, nested)
	kinds.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("choice")}, {Name: proto.String("_maybe")}}
	kinds.NestedType = []*descriptorpb.DescriptorProto{
		mapEntry("ByIntEntry", field("", tInt32, opt, ""), field("", tString, opt, "")),
		mapEntry("ByNameEntry", field("", tString, opt, ""), field("", tMessage, opt, ".kinds.Inner")),
		mapEntry("FlagsEntry", field("", tBool, opt, ""), field("", tBytes, opt, "")),
	}
	n = 0
	inner := &descriptorpb.DescriptorProto{Name: proto.String("Inner"), Field: []*F{
		field("name", tString, opt, ""), field("nums", tSint32, rep, ""), field("deep", tMessage, opt, ".kinds.Deep")}}
	n = 0
	deep := &descriptorpb.DescriptorProto{Name: proto.String("Deep"), Field: []*F{field("big", tUint64, opt, ""), field("at", tMessage, opt, ".google.protobuf.Timestamp")}}
	n = 0
	loop := &descriptorpb.DescriptorProto{Name: proto.String("Loop"), Field: []*F{field("next", tMessage, opt, ".kinds.Loop")}}
	fdp := &descriptorpb.FileDescriptorProto{
		Name: proto.String("kinds.proto"), Package: proto.String("kinds"), Syntax: proto.String("proto3"),
		Dependency:  []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{kinds, inner, deep, loop},
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("Color"), Value: []*descriptorpb.EnumValueDescriptorProto{
			{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)}, {Name: proto.String("RED"), Number: proto.Int32(1)}}}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestEveryKind writes every scalar kind, extreme values, nested and repeated messages, maps
// with int, string and bool keys, repeated enums and timestamps, proto3 optional and oneof, and
// reads exactly them back.
func TestEveryKind(t *testing.T) {
	t.Parallel()
	fd := kindsFile(t)
	md := fd.Messages().ByName("Kinds")
	s, err := NewSchema("kinds", md)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "schema/kinds.golden", renderSchema(s))

	msgs := everyKindMessages(fd)
	rows := writeAndRead(t, s, msgs)
	for i, m := range msgs {
		got := rows[i]
		for _, k := range sysColumnNames {
			delete(got, k)
		}
		diffRows(t, "message "+string(rune('0'+i)), expectRow(m), got)
	}
	if rows[0]["u64"] != "18446744073709551615" || rows[0]["maybe"] != int64(0) || rows[1]["maybe"] != nil || rows[2]["text"] != "" || rows[1]["text"] != nil {
		t.Errorf("spot checks: u64 %v, maybe %v/%v, text %q/%v", rows[0]["u64"], rows[0]["maybe"], rows[1]["maybe"], rows[2]["text"], rows[1]["text"])
	}
	if _, err := NewSchema("loop", fd.Messages().ByName("Loop")); err == nil || !strings.Contains(err.Error(), "recursive") {
		t.Errorf("recursive message: %v", err)
	}
}

// everyKindMessages are the messages of TestEveryKind: one with every field set (extreme values,
// nested and repeated messages, maps, unknown enum numbers), an empty one, and one with only a
// oneof string set to "".
func everyKindMessages(fd protoreflect.FileDescriptor) []proto.Message {
	md := fd.Messages().ByName("Kinds")
	f := func(name string) protoreflect.FieldDescriptor { return md.Fields().ByName(protoreflect.Name(name)) }
	innerMD := fd.Messages().ByName("Inner")
	deepMD := fd.Messages().ByName("Deep")
	newInner := func(name string, nums ...int32) *dynamicpb.Message {
		m := dynamicpb.NewMessage(innerMD)
		m.Set(innerMD.Fields().ByName("name"), protoreflect.ValueOfString(name))
		l := m.Mutable(innerMD.Fields().ByName("nums")).List()
		for _, n := range nums {
			l.Append(protoreflect.ValueOfInt32(n))
		}
		if len(nums) > 1 {
			d := dynamicpb.NewMessage(deepMD)
			d.Set(deepMD.Fields().ByName("big"), protoreflect.ValueOfUint64(math.MaxUint64))
			d.Set(deepMD.Fields().ByName("at"), protoreflect.ValueOfMessage(timestamppb.New(time.Unix(-1, 5000)).ProtoReflect()))
			m.Set(innerMD.Fields().ByName("deep"), protoreflect.ValueOfMessage(d))
		}
		return m
	}
	ts := func(sec int64, nanos int32) protoreflect.Value {
		return protoreflect.ValueOfMessage((&timestamppb.Timestamp{Seconds: sec, Nanos: nanos}).ProtoReflect())
	}
	full := dynamicpb.NewMessage(md)
	full.Set(f("b"), protoreflect.ValueOfBool(true))
	full.Set(f("i32"), protoreflect.ValueOfInt32(math.MinInt32))
	full.Set(f("s32"), protoreflect.ValueOfInt32(-7))
	full.Set(f("sf32"), protoreflect.ValueOfInt32(math.MaxInt32))
	full.Set(f("i64"), protoreflect.ValueOfInt64(math.MinInt64))
	full.Set(f("s64"), protoreflect.ValueOfInt64(-9))
	full.Set(f("sf64"), protoreflect.ValueOfInt64(math.MaxInt64))
	full.Set(f("u32"), protoreflect.ValueOfUint32(math.MaxUint32))
	full.Set(f("f32"), protoreflect.ValueOfUint32(3))
	full.Set(f("u64"), protoreflect.ValueOfUint64(math.MaxUint64))
	full.Set(f("f64"), protoreflect.ValueOfUint64(1<<63))
	full.Set(f("fl"), protoreflect.ValueOfFloat32(1.5))
	full.Set(f("d"), protoreflect.ValueOfFloat64(-2.25e300))
	full.Set(f("s"), protoreflect.ValueOfString("héllo, wörld"))
	full.Set(f("by"), protoreflect.ValueOfBytes([]byte{0, 1, 2, 255}))
	full.Set(f("color"), protoreflect.ValueOfEnum(1))
	full.Set(f("ts"), ts(1795000000, 123456789))
	full.Set(f("inner"), protoreflect.ValueOfMessage(newInner("a", 1, -2, 3)))
	inners := full.Mutable(f("inners")).List()
	inners.Append(protoreflect.ValueOfMessage(newInner("x")))
	inners.Append(protoreflect.ValueOfMessage(newInner("y", 4, 5)))
	colors := full.Mutable(f("colors")).List()
	colors.Append(protoreflect.ValueOfEnum(1))
	colors.Append(protoreflect.ValueOfEnum(0))
	colors.Append(protoreflect.ValueOfEnum(42)) // unknown number
	times := full.Mutable(f("times")).List()
	times.Append(ts(0, 0))
	times.Append(ts(-62135596800, 0)) // 0001-01-01
	byInt := full.Mutable(f("by_int")).Map()
	byInt.Set(protoreflect.ValueOfInt32(-5).MapKey(), protoreflect.ValueOfString("minus five"))
	byInt.Set(protoreflect.ValueOfInt32(7).MapKey(), protoreflect.ValueOfString("seven"))
	byName := full.Mutable(f("by_name")).Map()
	byName.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfMessage(newInner("v", 9, 8)))
	flags := full.Mutable(f("flags")).Map()
	flags.Set(protoreflect.ValueOfBool(true).MapKey(), protoreflect.ValueOfBytes([]byte("yes")))
	flags.Set(protoreflect.ValueOfBool(false).MapKey(), protoreflect.ValueOfBytes(nil))
	ds := full.Mutable(f("ds")).List()
	ds.Append(protoreflect.ValueOfFloat64(math.Inf(1)))
	ds.Append(protoreflect.ValueOfFloat64(0))
	full.Set(f("maybe"), protoreflect.ValueOfInt64(0)) // set to zero: not NULL
	full.Set(f("nested"), protoreflect.ValueOfMessage(newInner("in oneof")))

	empty := dynamicpb.NewMessage(md)
	textOnly := dynamicpb.NewMessage(md)
	textOnly.Set(f("text"), protoreflect.ValueOfString(""))

	return []proto.Message{full, empty, textOnly}
}
