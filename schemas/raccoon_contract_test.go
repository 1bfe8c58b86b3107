package schemas_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	raccoonv1beta1 "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// TestRaccoonWireContract pins the Raccoon v1beta1 contract: existing clients and the gRPC path
// depend on these exact names and numbers, so a change here is a compatibility break.
func TestRaccoonWireContract(t *testing.T) {
	fd := raccoonv1beta1.File_raystack_raccoon_v1beta1_raccoon_proto
	if fd.Package() != "raystack.raccoon.v1beta1" {
		t.Fatalf("package %s", fd.Package())
	}
	fields := map[string]map[protoreflect.FieldNumber]string{
		"SendEventRequest":  {1: "req_guid string", 2: "sent_time google.protobuf.Timestamp", 3: "events repeated raystack.raccoon.v1beta1.Event"},
		"Event":             {1: "event_bytes bytes", 2: "type string"},
		"SendEventResponse": {1: "status raystack.raccoon.v1beta1.Status", 2: "code raystack.raccoon.v1beta1.Code", 3: "sent_time int64", 4: "reason string", 5: "data map"},
	}
	for msg, want := range fields {
		md := fd.Messages().ByName(protoreflect.Name(msg))
		if md == nil {
			t.Fatalf("message %s missing", msg)
		}
		if md.Fields().Len() != len(want) {
			t.Errorf("%s has %d fields, want %d", msg, md.Fields().Len(), len(want))
		}
		for num, desc := range want {
			f := md.Fields().ByNumber(num)
			if f == nil {
				t.Errorf("%s: field %d missing", msg, num)
				continue
			}
			if got := describe(f); got != desc {
				t.Errorf("%s field %d = %q, want %q", msg, num, got, desc)
			}
		}
	}
	enums := map[string][]string{
		"Status": {"STATUS_UNSPECIFIED", "STATUS_SUCCESS", "STATUS_ERROR"},
		"Code":   {"CODE_UNSPECIFIED", "CODE_OK", "CODE_BAD_REQUEST", "CODE_INTERNAL_ERROR", "CODE_MAX_CONNECTION_LIMIT_REACHED", "CODE_MAX_USER_LIMIT_REACHED"},
	}
	for name, values := range enums {
		ed := fd.Enums().ByName(protoreflect.Name(name))
		if ed == nil {
			t.Fatalf("enum %s missing", name)
		}
		for num, v := range values {
			if got := ed.Values().ByNumber(protoreflect.EnumNumber(num)); got == nil || string(got.Name()) != v {
				t.Errorf("%s %d = %v, want %s", name, num, got, v)
			}
		}
	}
	if got := raccoonv1beta1.EventService_SendEvent_FullMethodName; got != "/raystack.raccoon.v1beta1.EventService/SendEvent" {
		t.Errorf("gRPC method %s", got)
	}
}

func describe(f protoreflect.FieldDescriptor) string {
	typ := f.Kind().String()
	switch {
	case f.IsMap():
		return string(f.Name()) + " map"
	case f.Message() != nil:
		typ = string(f.Message().FullName())
	case f.Enum() != nil:
		typ = string(f.Enum().FullName())
	}
	if f.IsList() {
		typ = "repeated " + typ
	}
	return string(f.Name()) + " " + typ
}
