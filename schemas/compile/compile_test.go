package compile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/clickstream/clickstream/schemas/compile"
	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
)

func TestDirCompilesATeamsOwnSchemas(t *testing.T) {
	set, err := compile.Dir("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range set.GetFile() {
		names = append(names, f.GetName())
		if len(f.GetSourceCodeInfo().GetLocation()) == 0 {
			t.Errorf("%s: no source info", f.GetName())
		}
	}
	// Imports first; the vendored (and broken) copies of built-in files are neither compiled
	// nor shipped.
	if want := []string{"shop/v1/common.proto", "shop/v1/checkout.proto"}; !slices.Equal(names, want) {
		t.Fatalf("files = %v, want %v", names, want)
	}

	// The custom options are the linked Go types, not unknown bytes or dynamic messages.
	checkout := set.GetFile()[1].GetMessageType()[0]
	opts := checkout.GetOptions()
	if len(opts.ProtoReflect().GetUnknown()) != 0 {
		t.Errorf("message options keep unknown bytes %x", opts.ProtoReflect().GetUnknown())
	}
	if eo, ok := proto.GetExtension(opts, clickstreamv1.E_Event).(*clickstreamv1.EventOptions); !ok || eo.GetType() != "checkout_started" {
		t.Errorf("event option = %T %v, want *EventOptions of checkout_started", proto.GetExtension(opts, clickstreamv1.E_Event), eo)
	}
	if _, ok := proto.GetExtension(checkout.GetField()[0].GetOptions(), validate.E_Field).(*validate.FieldRules); !ok {
		t.Errorf("field rules are not *validate.FieldRules")
	}

	r, err := compile.Check(set, 7)
	if err != nil {
		t.Fatal(err)
	}
	et, ok := r.Lookup("checkout_started")
	if !ok || r.Version() != 7 {
		t.Fatalf("types %s version %d, want checkout_started version 7", r, r.Version())
	}
	if et.Message.FullName() != "shop.v1.CheckoutStarted" || et.IDField.Name() != "event_id" || et.TimeField.Name() != "event_time" {
		t.Errorf("event type = %s id %v time %v", et.Message.FullName(), et.IDField, et.TimeField)
	}

	// The rules, the CEL one included, are live: a message breaking them is refused.
	v, err := protovalidate.New()
	if err != nil {
		t.Fatal(err)
	}
	good := checkoutMessage(t, et.Message, "EUR")
	if err := v.Validate(good); err != nil {
		t.Errorf("a valid checkout: %v", err)
	}
	bad := checkoutMessage(t, et.Message, "USD")
	var verr *protovalidate.ValidationError
	if err := v.Validate(bad); !errors.As(err, &verr) || len(verr.Violations) != 1 || verr.Violations[0].Proto.GetRuleId() != "checkout.one_currency" {
		t.Errorf("a checkout mixing currencies: %v, want a violation of checkout.one_currency", err)
	}
}

// checkoutMessage builds a checkout whose total is in EUR and whose one line is in currency.
func checkoutMessage(t *testing.T, md protoreflect.MessageDescriptor, currency string) *dynamicpb.Message {
	t.Helper()
	msg := dynamicpb.NewMessage(md)
	fields := md.Fields()
	money := func(cur string, units int64) protoreflect.Value {
		m := dynamicpb.NewMessage(fields.ByName("total").Message())
		m.Set(m.Descriptor().Fields().ByName("currency"), protoreflect.ValueOfString(cur))
		m.Set(m.Descriptor().Fields().ByName("units"), protoreflect.ValueOfInt64(units))
		return protoreflect.ValueOfMessage(m)
	}
	msg.Set(fields.ByName("event_id"), protoreflect.ValueOfString("6f1c1f4e-8a4b-4d5e-9a57-5f4b7f5a1c2d"))
	ts := dynamicpb.NewMessage(fields.ByName("event_time").Message())
	proto.Merge(ts, timestamppb.Now())
	msg.Set(fields.ByName("event_time"), protoreflect.ValueOfMessage(ts))
	msg.Set(fields.ByName("total"), money("EUR", 10))
	lineDesc := fields.ByName("lines").Message()
	line := dynamicpb.NewMessage(lineDesc)
	line.Set(lineDesc.Fields().ByName("sku"), protoreflect.ValueOfString("sku-1"))
	line.Set(lineDesc.Fields().ByName("quantity"), protoreflect.ValueOfInt64(1))
	line.Set(lineDesc.Fields().ByName("price"), money(currency, 10))
	lines := msg.Mutable(fields.ByName("lines")).List()
	lines.Append(protoreflect.ValueOfMessage(line))
	return msg
}

// at is "file:line:" of the first line of dir/file containing marker: where an error about it
// must point.
func at(t *testing.T, dir, file, marker string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(src), "\n") {
		if strings.Contains(line, marker) {
			return fmt.Sprintf("%s:%d:", file, i+1)
		}
	}
	t.Fatalf("%s: no line contains %q", file, marker)
	return ""
}

func TestDirReportsEveryProblemAtItsLine(t *testing.T) {
	type want struct{ file, marker, text string } // an error line at file:line-of-marker containing text
	for _, tc := range []struct {
		dir   string
		wants []want
		lines int // how many error lines in all
	}{
		{"syntax", []want{
			{"shop/a.proto", "int32 count", "syntax error"},
			{"shop/b.proto", "strin name", "unknown type strin"},
		}, 2},
		{"unknown_import", []want{
			{"shop/a.proto", `import "shop/missing.proto"`, "shop/missing.proto: no such file"},
			{"shop/b.proto", `import "shared/money.proto"`, "shared/money.proto: no such file"},
		}, 2},
		{"bad_options", []want{
			{"shop/events.proto", `type: "Checkout-Started"`, `shop.BadName: event type "Checkout-Started": must match`},
			{"shop/events.proto", `the id and time fields are wrong`, `shop.BadFields: id_field "count": must be a singular string`},
			{"shop/events.proto", `the id and time fields are wrong`, `shop.BadFields: time_field "at": no such field`},
		}, 3},
		{"bad_cel", []want{
			{"shop/events.proto", `option (buf.validate.message).cel`, "shop.Order: compilation error: failed to compile expression order.no_such_field"},
			{"shop/events.proto", `string city = 1`, "shop.Address.city: compilation error: failed to compile expression address.city_not_bool"},
			{"shop/events.proto", `Note's broken rule`, "shop.Note: compilation error: failed to compile expression note.wrong_type"},
		}, 3},
		{"wrong_kind", []want{
			{"shop/events.proto", `int32 quantity = 2`, `shop.Order.quantity: compilation error: expected rule "buf.validate.FieldRules.int32", got "buf.validate.FieldRules.string"`},
		}, 1},
		{"nested_rule", []want{
			{"shop/events.proto", `int64 quantity = 1`, `shop.Line.quantity: compilation error: expected rule "buf.validate.FieldRules.int64"`},
		}, 1},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.dir)
			set, err := compile.Dir(dir)
			if err == nil {
				t.Fatalf("Dir(%s) = %d files, want an error", dir, len(set.GetFile()))
			}
			t.Logf("Dir(%s):\n%v", dir, err)
			var problems []error
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				problems = joined.Unwrap()
			} else {
				problems = []error{err}
			}
			if len(problems) != tc.lines {
				t.Errorf("%d problems, want %d", len(problems), tc.lines)
			}
			for _, p := range problems {
				// The rule problems are registry.Problems, for `schemas push` to print alike.
				var rp *registry.Problem
				if strings.Contains(p.Error(), "compilation error") && (!errors.As(p, &rp) || rp.Rule != registry.RuleCompile) {
					t.Errorf("%v: not a *registry.Problem of rule %s", p, registry.RuleCompile)
				}
			}
			for _, w := range tc.wants {
				pos := at(t, dir, w.file, w.marker)
				found := false
				for _, p := range problems {
					if strings.HasPrefix(p.Error(), pos) && strings.Contains(p.Error(), w.text) {
						found = true
					}
				}
				if !found {
					t.Errorf("no problem at %s containing %q", pos, w.text)
				}
			}
		})
	}
}

func TestDirRefuses(t *testing.T) {
	for _, tc := range []struct{ name, dir, want string }{
		{"no event type", "testdata/no_events", "no event type"},
		{"no .proto files", t.TempDir(), "no .proto files"},
		{"no such dir", "testdata/does_not_exist", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := compile.Dir(tc.dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Dir(%s) = %v, want an error containing %q", tc.dir, err, tc.want)
			}
		})
	}
}

func TestDirRefusesImportsOutsideTheDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"shop/a.proto": `syntax = "proto3";
package shop;
import "../secret.proto";
message A { string id = 1; }
`})
	_, err := compile.Dir(dir)
	if err == nil || !strings.Contains(err.Error(), "shop/a.proto:3:8: ../secret.proto: not a path under the schema directory") {
		t.Fatalf("Dir = %v, want the import refused at shop/a.proto:3:8", err)
	}
}

// TestTheExamplesCompileToTheDefaultRegistry compiles schemas/proto as a team would push it:
// the event schemas, plus files that declare no event (dead letters, the schema version, the
// Raccoon envelope), plus a vendored copy of the built-in options.proto.
func TestTheExamplesCompileToTheDefaultRegistry(t *testing.T) {
	set, err := compile.Dir("../proto")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range set.GetFile() {
		names = append(names, f.GetName())
	}
	if slices.Contains(names, "clickstream/v1/options.proto") {
		t.Errorf("the built-in options.proto is in the set: %v", names)
	}
	for _, want := range []string{"clickstream/events/v1/purchase.proto", "clickstream/v1/dead_letter.proto", "raystack/raccoon/v1beta1/raccoon.proto"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s missing from the set %v", want, names)
		}
	}
	r, err := compile.Check(set, 1)
	if err != nil {
		t.Fatal(err)
	}
	def := registry.Default()
	if !slices.Equal(r.Names(), def.Names()) {
		t.Fatalf("types = %v, want %v", r.Names(), def.Names())
	}
	for _, et := range r.Types() {
		want, _ := def.Lookup(et.Name)
		if et.Message.FullName() != want.Message.FullName() || et.IDField.Name() != want.IDField.Name() || et.TimeField.Name() != want.TimeField.Name() {
			t.Errorf("%s: %s id %s time %s, want %s id %s time %s", et.Name,
				et.Message.FullName(), et.IDField.Name(), et.TimeField.Name(),
				want.Message.FullName(), want.IDField.Name(), want.TimeField.Name())
		}
	}
	// Same fields, types and rules as the compiled-in schemas, both ways.
	if d := registry.Diff(def, r); len(d) != 0 {
		t.Errorf("Diff(default, compiled) = %q, want none", d)
	}
	if err := registry.Compatible(def, r); err != nil {
		t.Errorf("Compatible(default, compiled) = %v", err)
	}
	if err := registry.Compatible(r, def); err != nil {
		t.Errorf("Compatible(compiled, default) = %v", err)
	}
}

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
