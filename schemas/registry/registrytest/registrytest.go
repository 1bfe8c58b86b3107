// Package registrytest builds schema versions for tests: the example schemas plus event types
// and fields that no .proto file in the repository declares, as a push of a team's own schemas
// would bring them.
package registrytest

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
)

// Field is one scalar field of a new message.
type Field struct {
	Name   string
	Number int32
	Type   descriptorpb.FieldDescriptorProto_Type // TYPE_STRING, TYPE_INT64, ...
}

// NewType is an event type declared in a file of its own (package test.v1).
type NewType struct {
	Type    string // the event type name
	Message string // the message name, e.g. "CheckoutStarted"
	IDField string // optional: a string field of Fields
	Fields  []Field
}

// File is the .proto file declaring t.
func (t NewType) File() *descriptorpb.FileDescriptorProto {
	opts := &descriptorpb.MessageOptions{}
	proto.SetExtension(opts, clickstreamv1.E_Event, &clickstreamv1.EventOptions{Type: t.Type, IdField: t.IDField})
	msg := &descriptorpb.DescriptorProto{Name: proto.String(t.Message), Options: opts}
	for _, f := range t.Fields {
		msg.Field = append(msg.Field, &descriptorpb.FieldDescriptorProto{
			Name: proto.String(f.Name), Number: proto.Int32(f.Number), Type: f.Type.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String(f.Name),
		})
	}
	return &descriptorpb.FileDescriptorProto{
		Name: proto.String("test/v1/" + t.Type + ".proto"), Package: proto.String("test.v1"), Syntax: proto.String("proto3"),
		Dependency:  []string{"clickstream/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{msg},
	}
}

// ExamplesPlus returns version of the example schemas plus the given types.
func ExamplesPlus(t testing.TB, version uint32, types ...NewType) *registry.Registry {
	t.Helper()
	set := registry.DefaultDescriptorSet()
	for _, nt := range types {
		set.File = append(set.File, nt.File())
	}
	r, err := registry.FromDescriptorSet(set, version)
	if err != nil {
		t.Fatalf("registry of version %d: %v", version, err)
	}
	return r
}
