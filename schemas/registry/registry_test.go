package registry_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/events/v1"
	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

func TestDefaultHasTheExampleTypes(t *testing.T) {
	r := registry.Default()
	if got := r.Names(); !slices.Equal(got, samples.Types) {
		t.Fatalf("Names() = %v, want %v", got, samples.Types)
	}
	want := map[string]protoreflect.FullName{
		"page_view":   "clickstream.events.v1.PageView",
		"click":       "clickstream.events.v1.Click",
		"add_to_cart": "clickstream.events.v1.AddToCart",
		"purchase":    "clickstream.events.v1.Purchase",
		"app_open":    "clickstream.events.v1.AppOpen",
	}
	for name, msg := range want {
		et, ok := r.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) not found", name)
		}
		if et.Message.FullName() != msg {
			t.Errorf("%s: message %s, want %s", name, et.Message.FullName(), msg)
		}
		if et.IDField == nil || et.IDField.Name() != "event_id" {
			t.Errorf("%s: IDField = %v, want event_id", name, et.IDField)
		}
		if et.TimeField == nil || et.TimeField.Name() != "event_time" {
			t.Errorf("%s: TimeField = %v, want event_time", name, et.TimeField)
		}
		if et.GoType() == nil {
			t.Errorf("%s: generated Go type not found", name)
		}
		byMsg, ok := r.ByMessage(msg)
		if !ok || byMsg.Name != name {
			t.Errorf("ByMessage(%s) = %q, %v", msg, byMsg.Name, ok)
		}
	}
	if _, ok := r.Lookup("checkout_started"); ok {
		t.Error("Lookup of an undeclared type succeeded")
	}
}

func TestNewMessageUsesGeneratedType(t *testing.T) {
	et, _ := registry.Default().Lookup("purchase")
	if _, ok := et.NewMessage().(*eventsv1.Purchase); !ok {
		t.Fatalf("NewMessage() = %T, want *eventsv1.Purchase", et.NewMessage())
	}
}

func TestValidTypeName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"page_view", "a", "app2_open", strings.Repeat("a", 63)} {
		if err := registry.ValidTypeName(ok); err != nil {
			t.Errorf("ValidTypeName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "Page", "page-view", "page.view", "1st", "_x", "a b", "ü", strings.Repeat("a", 64), "x/../y"} {
		if err := registry.ValidTypeName(bad); err == nil {
			t.Errorf("ValidTypeName(%q) = nil, want an error", bad)
		}
	}
}

// buildFile compiles a small file declaring events, to test New's checks without .proto sources.
func buildFile(t *testing.T, msgs ...*descriptorpb.DescriptorProto) protoreflect.FileDescriptor {
	t.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("test/events.proto"),
		Package:     proto.String("test"),
		Syntax:      proto.String("proto3"),
		Dependency:  []string{"clickstream/v1/options.proto", "google/protobuf/timestamp.proto"},
		MessageType: msgs,
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("build test file: %v", err)
	}
	return fd
}

func message(name string, opts *clickstreamv1.EventOptions, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
	mo := &descriptorpb.MessageOptions{}
	proto.SetExtension(mo, clickstreamv1.E_Event, opts)
	return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields, Options: mo}
}

func field(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{
		Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String(name),
	}
	if typeName != "" {
		f.TypeName = proto.String(typeName)
	}
	return f
}

func TestNewReportsEveryProblem(t *testing.T) {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING
	i64 := descriptorpb.FieldDescriptorProto_TYPE_INT64
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	fd := buildFile(t,
		message("Good", &clickstreamv1.EventOptions{Type: "good", IdField: "id", TimeField: "at"},
			field("id", 1, str, ""), field("at", 2, msg, ".google.protobuf.Timestamp")),
		message("BadName", &clickstreamv1.EventOptions{Type: "Bad-Name"}),
		message("BadID", &clickstreamv1.EventOptions{Type: "bad_id", IdField: "n"}, field("n", 1, i64, "")),
		message("MissingTime", &clickstreamv1.EventOptions{Type: "missing_time", TimeField: "when"}),
		message("Dup", &clickstreamv1.EventOptions{Type: "good"}),
	)
	_, err := registry.New(fd)
	if err == nil {
		t.Fatal("New() = nil error, want problems")
	}
	for _, want := range []string{
		`test.BadName: event type "Bad-Name": must match`,
		`test.BadID: id_field "n": must be a singular string`,
		`test.MissingTime: time_field "when": no such field`,
		`test.Dup: event type "good" already declared by test.Good`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\ndoes not contain %q", err, want)
		}
	}
}

func TestNewDynamicMessageWhenNotLinked(t *testing.T) {
	fd := buildFile(t, message("Free", &clickstreamv1.EventOptions{Type: "free"}, field("id", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, "")))
	r, err := registry.New(fd)
	if err != nil {
		t.Fatal(err)
	}
	et, ok := r.Lookup("free")
	if !ok {
		t.Fatal("free not found")
	}
	if et.GoType() != nil {
		t.Errorf("GoType() = %v, want nil", et.GoType())
	}
	if _, ok := et.NewMessage().(*dynamicpb.Message); !ok {
		t.Errorf("NewMessage() = %T, want *dynamicpb.Message", et.NewMessage())
	}
}

func TestFromDescriptorSetOfTheExamples(t *testing.T) {
	set := registry.DefaultDescriptorSet()
	for _, f := range set.GetFile() {
		if registry.Builtin(f.GetName()) {
			t.Errorf("the default set carries the built-in file %s", f.GetName())
		}
	}
	r, err := registry.FromDescriptorSet(set, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.String(), registry.Default().String(); got != want {
		t.Fatalf("types = %s, want %s", got, want)
	}
	if r.Version() != 1 || r.DescriptorSet() != set {
		t.Errorf("version %d, set %p; want 1, %p", r.Version(), r.DescriptorSet(), set)
	}
	for _, et := range r.Types() {
		def, _ := registry.Default().Lookup(et.Name)
		if et.GoType() != nil {
			t.Errorf("%s: a runtime-loaded type must not claim the generated Go type", et.Name)
		}
		if et.Message.FullName() != def.Message.FullName() || (et.IDField == nil) != (def.IDField == nil) || (et.TimeField == nil) != (def.TimeField == nil) {
			t.Errorf("%s: message/id/time differ from the compiled-in registry", et.Name)
		}
	}
}

func TestFromDescriptorSetRefusesBrokenSets(t *testing.T) {
	full := registry.DefaultDescriptorSet()
	var withoutContext descriptorpb.FileDescriptorSet
	for _, f := range full.GetFile() {
		if f.GetName() != "clickstream/events/v1/context.proto" {
			withoutContext.File = append(withoutContext.File, f)
		}
	}
	dup := registry.DefaultDescriptorSet()
	dup.File = append(dup.File, dup.File[0])
	builtin := registry.DefaultDescriptorSet()
	builtin.File = append(builtin.File, protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto))
	for name, set := range map[string]*descriptorpb.FileDescriptorSet{
		"missing import": &withoutContext, "duplicate file": dup, "built-in file": builtin,
	} {
		if _, err := registry.FromDescriptorSet(set, 2); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
