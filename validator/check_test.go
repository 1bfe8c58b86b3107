package validator

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
)

var (
	testAt     = time.Date(2026, 11, 22, 13, 4, 5, 123456789, time.UTC)
	testFailAt = time.Date(2026, 11, 22, 13, 4, 6, 0, time.UTC)
	decoders   = []string{DecoderHyperPB, DecoderGenerated}
)

func newTestChecker(t testing.TB, decoder string, reg *registry.Registry) *Checker {
	t.Helper()
	if reg == nil {
		reg = registry.Default()
	}
	c, err := NewChecker(reg, CheckerConfig{Decoder: decoder, MaxEventBytes: 1000000, Version: "test-1",
		Now: func() time.Time { return testFailAt }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// metaFor is the meta of an event of typ as the collector would have written it: on the type's
// own raw topic when the registry knows it, else on the catch-all.
func metaFor(typ string, offset int64) Meta {
	topicType := typ
	if _, ok := registry.Default().Lookup(typ); !ok {
		topicType = kafka.UnknownType
	}
	return Meta{Topic: kafka.RawTopic(kafka.DefaultRawTopicPattern, topicType), TopicType: topicType,
		Partition: 2, Offset: offset, Timestamp: testAt}
}

func TestCheckValidSamples(t *testing.T) {
	t.Parallel()
	for _, dec := range decoders {
		c := newTestChecker(t, dec, nil)
		for _, typ := range samples.Types {
			et, _ := registry.Default().Lookup(typ)
			t.Run(dec+"/"+typ, func(t *testing.T) {
				for i := range 40 {
					b := samples.Marshal(samples.Event(typ, i, testAt))
					res, err := c.Check(typ, b, metaFor(typ, int64(i)))
					if err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					if !res.Valid() {
						t.Fatalf("event %d refused: %v %v", i, res.DeadLetter.Kind, res.DeadLetter.Violations)
					}
					if res.Schema != string(et.Message.FullName()) {
						t.Fatalf("schema = %q, want %q", res.Schema, et.Message.FullName())
					}
				}
			})
		}
	}
}

func TestCheckInvalids(t *testing.T) {
	t.Parallel()
	for _, dec := range decoders {
		c := newTestChecker(t, dec, nil)
		for n, inv := range samples.Invalids(testAt) {
			t.Run(dec+"/"+inv.Name, func(t *testing.T) {
				m := metaFor(inv.Type, int64(100+n))
				res, err := c.Check(inv.Type, inv.Bytes, m)
				if err != nil {
					t.Fatal(err)
				}
				dl := res.DeadLetter
				if dl == nil {
					t.Fatal("accepted")
				}
				if dl.Kind != inv.Kind {
					t.Fatalf("kind = %v, want %v (error %q)", dl.Kind, inv.Kind, dl.Error)
				}
				if got := ruleIDs(dl); !slices.Equal(got, inv.RuleIDs) {
					t.Fatalf("rule ids = %v, want %v; violations %v", got, inv.RuleIDs, dl.Violations)
				}
				for _, v := range dl.Violations {
					if v.RuleId == "" || v.Message == "" {
						t.Errorf("incomplete violation %v", v)
					}
				}
				if dl.Kind != clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED && dl.Error == "" {
					t.Error("no error text")
				}
				wantSchema := ""
				if et, ok := registry.Default().Lookup(inv.Type); ok {
					wantSchema = string(et.Message.FullName())
				}
				if dl.EventType != inv.Type || dl.Message != wantSchema || res.Schema != wantSchema {
					t.Errorf("event_type %q message %q schema %q, want %q %q", dl.EventType, dl.Message, res.Schema, inv.Type, wantSchema)
				}
				if !bytes.Equal(dl.EventBytes, inv.Bytes) {
					t.Error("event bytes differ from the raw bytes")
				}
				if dl.SourceTopic != m.Topic || dl.SourcePartition != m.Partition || dl.SourceOffset != m.Offset {
					t.Errorf("source %s/%d/%d, want %s/%d/%d", dl.SourceTopic, dl.SourcePartition, dl.SourceOffset, m.Topic, m.Partition, m.Offset)
				}
				if !dl.ReceivedAt.AsTime().Equal(testAt) || !dl.FailedAt.AsTime().Equal(testFailAt) {
					t.Errorf("received_at %v failed_at %v", dl.ReceivedAt.AsTime(), dl.FailedAt.AsTime())
				}
				if dl.ValidatorVersion != "test-1" {
					t.Errorf("validator_version %q", dl.ValidatorVersion)
				}
				if _, err := proto.Marshal(dl); err != nil {
					t.Errorf("dead letter does not encode: %v", err)
				}
			})
		}
	}
}

// ruleIDs are the sorted distinct rule ids of dl's violations.
func ruleIDs(dl *clickstreamv1.DeadLetter) []string {
	var ids []string
	for _, v := range dl.Violations {
		ids = append(ids, v.RuleId)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func TestCheckFieldPaths(t *testing.T) {
	t.Parallel()
	want := map[string][]string{ // invalid example -> field paths of its violations, sorted
		"click out of range":                             {"button", "element_id", "x"},
		"add_to_cart zero quantity, lower-case currency": {"item.currency", "item.quantity"},
		"page_view bad utm key, no context":              {"context", `utm["source"]`},
		"purchase item in another currency":              {""},
		"app_open battery over 100, repeated feature":    {"battery_level", "enabled_features"},
		"purchase bad email, no items, no payment":       {"email", "items", "payment"},
		"page_view bad uuid and url":                     {"event_id", "url"},
		"app_open without event time":                    {"event_time"},
	}
	for _, dec := range decoders {
		c := newTestChecker(t, dec, nil)
		for _, inv := range samples.Invalids(testAt) {
			paths, ok := want[inv.Name]
			if !ok {
				continue
			}
			res, err := c.Check(inv.Type, inv.Bytes, metaFor(inv.Type, 1))
			if err != nil || res.DeadLetter == nil {
				t.Fatalf("%s: %v %v", inv.Name, res, err)
			}
			var got []string
			for _, v := range res.DeadLetter.Violations {
				got = append(got, v.FieldPath)
			}
			slices.Sort(got)
			if !slices.Equal(got, paths) {
				t.Errorf("%s/%s: field paths %q, want %q", dec, inv.Name, got, paths)
			}
		}
	}
}

func TestCheckNestedListPath(t *testing.T) {
	t.Parallel()
	p := samples.Event("purchase", 3, testAt)
	items := p.ProtoReflect().Descriptor().Fields().ByName("items")
	list := p.ProtoReflect().Get(items).List()
	list.Get(1).Message().Set(list.Get(1).Message().Descriptor().Fields().ByName("quantity"), protoreflect.ValueOfInt32(0))
	b := samples.Marshal(p)
	for _, dec := range decoders {
		res, err := newTestChecker(t, dec, nil).Check("purchase", b, metaFor("purchase", 1))
		if err != nil || res.DeadLetter == nil {
			t.Fatalf("%s: %v %v", dec, res, err)
		}
		if v := res.DeadLetter.Violations; len(v) != 1 || v[0].FieldPath != "items[1].quantity" || v[0].RuleId != "int32.gt_lte" {
			t.Errorf("%s: violations %v, want items[1].quantity int32.gt_lte", dec, v)
		}
	}
}

func TestCheckRouting(t *testing.T) {
	t.Parallel()
	click := samples.Marshal(samples.Event("click", 1, testAt))
	tests := []struct {
		name      string
		typ       string
		value     []byte
		topicType string
		wantKind  clickstreamv1.FailureKind // UNSPECIFIED: valid
		wantErr   string                    // a SchemaError reason
	}{
		{"known type on its topic", "click", click, "click", 0, ""},
		{"known type on the catch-all", "click", click, kafka.UnknownType, 0, ""},
		{"known type on a shared topic", "click", click, "", 0, ""},
		{"unknown type on the catch-all", "checkout_started", click, kafka.UnknownType, clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE, ""},
		{"unknown type on a shared topic", "checkout_started", click, "", clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE, ""},
		{"unknown type on another type's topic", "checkout_started", click, "click", clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE, ""},
		{"type named unknown on the catch-all", kafka.UnknownType, click, kafka.UnknownType, clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE, ""},
		{"no schema for a type with its own topic", "checkout_started", click, "checkout_started", 0, ReasonMissingSchema},
		{"too large", "click", bytes.Repeat([]byte{0}, 1000001), "click", clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE, ""},
		{"empty bytes", "click", nil, "click", clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED, ""},
		{"invalid UTF-8 in a string", "click", []byte{0x0a, 0x02, 0xff, 0xfe}, "click", clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR, ""},
		{"truncated", "click", click[:len(click)-3], "click", clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR, ""},
	}
	for _, dec := range decoders {
		c := newTestChecker(t, dec, nil)
		for _, tt := range tests {
			t.Run(dec+"/"+tt.name, func(t *testing.T) {
				m := Meta{Topic: "t", TopicType: tt.topicType, Timestamp: testAt}
				res, err := c.Check(tt.typ, tt.value, m)
				if tt.wantErr != "" {
					var se *SchemaError
					if !errors.As(err, &se) || se.Reason != tt.wantErr || !errors.Is(err, ErrBrokenSchema) {
						t.Fatalf("err = %v, want a SchemaError %s", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var got clickstreamv1.FailureKind
				if res.DeadLetter != nil {
					got = res.DeadLetter.Kind
				}
				if got != tt.wantKind {
					t.Fatalf("kind %v, want %v (%v)", got, tt.wantKind, res.DeadLetter)
				}
			})
		}
	}
}

// testRegistry declares one event type "thing" (message test.v1.Thing with a string field
// "name") whose message rule is the CEL expression expr. Its message is not linked in, so the
// generated decoder falls back to dynamicpb.
func testRegistry(t testing.TB, typ, expr string) *registry.Registry {
	t.Helper()
	fd, err := protodesc.NewFile(thingFile(typ, expr), protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(fd)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// thingFile declares event type typ as message test.v1.<typ>.Thing{string name = 1} with one
// CEL rule, expr (id thing.rule).
func thingFile(typ, expr string) *descriptorpb.FileDescriptorProto {
	msgOpts := &descriptorpb.MessageOptions{}
	proto.SetExtension(msgOpts, clickstreamv1.E_Event, &clickstreamv1.EventOptions{Type: typ})
	proto.SetExtension(msgOpts, validate.E_Message, validate.MessageRules_builder{
		Cel: []*validate.Rule{validate.Rule_builder{Id: proto.String("thing.rule"), Expression: proto.String(expr),
			Message: proto.String("the thing rule")}.Build()},
	}.Build())
	return &descriptorpb.FileDescriptorProto{
		Name:       proto.String("test/v1/" + typ + ".proto"),
		Package:    proto.String("test.v1." + typ),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"buf/validate/validate.proto", "clickstream/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Thing"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("name"), JsonName: proto.String("name"), Number: proto.Int32(1),
				Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}},
			Options: msgOpts,
		}},
	}
}

// thing encodes a test.v1.Thing with name.
func thing(name string) []byte {
	return append([]byte{0x0a, byte(len(name))}, name...)
}

func TestCheckerDynamicType(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t, "thing", "this.name != 'bad'")
	for _, dec := range decoders {
		c := newTestChecker(t, dec, reg)
		if res, err := c.Check("thing", thing("good"), Meta{TopicType: "thing"}); err != nil || !res.Valid() {
			t.Errorf("%s: good thing: %v %v", dec, res, err)
		}
		res, err := c.Check("thing", thing("bad"), Meta{TopicType: "thing"})
		if err != nil || res.DeadLetter == nil || ruleIDs(res.DeadLetter)[0] != "thing.rule" {
			t.Errorf("%s: bad thing: %v %v", dec, res, err)
		}
	}
}

// TestAutoDecoder: generated code for linked-in types, hyperpb for the others.
func TestAutoDecoder(t *testing.T) {
	t.Parallel()
	c := newTestChecker(t, DecoderAuto, nil)
	for name, ct := range c.types {
		if ct.hyper != nil {
			t.Errorf("%s: hyperpb for a linked-in type", name)
		}
	}
	reg := testRegistry(t, "thing", "this.name != 'bad'")
	c = newTestChecker(t, DecoderAuto, reg)
	if c.types["thing"].hyper == nil {
		t.Error("thing: no hyperpb for a type without generated code")
	}
	if res, err := c.Check("thing", thing("bad"), Meta{TopicType: "thing"}); err != nil || res.Valid() {
		t.Errorf("bad thing: %v %v", res, err)
	}
}

func TestCheckerBrokenRuleAtStart(t *testing.T) {
	t.Parallel()
	reg := testRegistry(t, "thing", "this.name > 3") // string > int: does not compile
	for _, dec := range decoders {
		_, err := NewChecker(reg, CheckerConfig{Decoder: dec, MaxEventBytes: 100})
		var se *SchemaError
		if !errors.As(err, &se) || se.Reason != ReasonBrokenRule || se.Type != "thing" || !errors.Is(err, ErrBrokenSchema) {
			t.Fatalf("%s: err = %v, want a broken rule of thing", dec, err)
		}
		if !strings.Contains(err.Error(), "compilation error") {
			t.Errorf("%s: error does not say what is broken: %v", dec, err)
		}
	}
}

func TestCheckerBrokenRuleAtRunTime(t *testing.T) {
	t.Parallel()
	// Compiles, passes on an empty message, fails to evaluate on a non-numeric name.
	reg := testRegistry(t, "thing", "this.name == '' || int(this.name) > 0")
	for _, dec := range decoders {
		c := newTestChecker(t, dec, reg)
		if res, err := c.Check("thing", thing("12"), Meta{TopicType: "thing"}); err != nil || !res.Valid() {
			t.Fatalf("%s: numeric name: %v %v", dec, res, err)
		}
		_, err := c.Check("thing", thing("abc"), Meta{TopicType: "thing"})
		var se *SchemaError
		if !errors.As(err, &se) || se.Reason != ReasonBrokenRule || se.Message != "test.v1.thing.Thing" {
			t.Fatalf("%s: err = %v, want a broken rule", dec, err)
		}
	}
}

// TestRuntimeRegistrySameVerdicts: the example schemas loaded at run time (no generated Go
// types: DecoderAuto takes hyperpb) judge every valid and invalid example exactly as the
// compiled-in registry does, with the same violations in the same order. BenchmarkCheck's
// runtime case is only worth its figures if it does the same work.
func TestRuntimeRegistrySameVerdicts(t *testing.T) {
	t.Parallel()
	gen := newTestChecker(t, DecoderGenerated, nil)
	rt := newTestChecker(t, DecoderAuto, runtimeRegistry(t))
	for typ, ct := range rt.types {
		if ct.hyper == nil {
			t.Errorf("%s: the runtime registry's type is not decoded with hyperpb", typ)
		}
	}
	type input struct {
		typ string
		b   []byte
	}
	var in []input
	for _, typ := range samples.Types {
		for i := range 40 {
			in = append(in, input{typ, samples.Marshal(samples.Event(typ, i, testAt))})
		}
	}
	for _, inv := range samples.Invalids(testAt) {
		in = append(in, input{inv.Type, inv.Bytes})
	}
	for n, e := range in {
		m := metaFor(e.typ, int64(n))
		want, werr := gen.Check(e.typ, e.b, m)
		got, gerr := rt.Check(e.typ, e.b, m)
		if (werr == nil) != (gerr == nil) || !proto.Equal(want.DeadLetter, got.DeadLetter) || want.Schema != got.Schema {
			t.Errorf("%s #%d: runtime %v %v, generated %v %v", e.typ, n, got, gerr, want, werr)
		}
	}
}
