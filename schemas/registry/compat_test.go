package registry_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/clickstream/clickstream/schemas/compile"
	"github.com/clickstream/clickstream/schemas/registry"
)

// shopFile is where every version of the test schemas lives.
const shopFile = "shop/v1/shop.proto"

// shopV1 is the base version the compatibility cases edit.
const shopV1 = `syntax = "proto3";

package shop.v1;

import "buf/validate/validate.proto";
import "clickstream/v1/options.proto";
import "google/protobuf/timestamp.proto";

message Checkout {
  option (clickstream.v1.event) = {type: "checkout" id_field: "event_id" time_field: "event_time"};

  string event_id = 1 [(buf.validate.field).string.uuid = true];
  google.protobuf.Timestamp event_time = 2;
  int32 quantity = 3;
  repeated Item items = 4;
  map<string, string> labels = 5;
  Color color = 6;
  string note = 7;
  oneof payment {
    string card = 8;
    string voucher = 9;
  }
}

message Item {
  string sku = 1 [(buf.validate.field).string.min_len = 1];
  int64 price = 2;
}

enum Color {
  COLOR_UNSPECIFIED = 0;
  COLOR_RED = 1;
  COLOR_BLUE = 2;
}

message Refund {
  option (clickstream.v1.event) = {type: "refund" id_field: "event_id" time_field: "event_time"};

  string event_id = 1;
  google.protobuf.Timestamp event_time = 2;
}
`

// version compiles src as shop/v1/shop.proto of a schema directory.
func version(t *testing.T, src string, n uint32) *registry.Registry {
	t.Helper()
	dir := t.TempDir()
	name := filepath.Join(dir, filepath.FromSlash(shopFile))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := compile.Dir(dir)
	if err != nil {
		t.Fatalf("compile version %d: %v", n, err)
	}
	r, err := compile.Check(set, n)
	if err != nil {
		t.Fatalf("check version %d: %v", n, err)
	}
	return r
}

// edit applies old->new replacements to src, each of which must apply.
func edit(t *testing.T, src string, pairs ...string) string {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(src, pairs[i]) {
			t.Fatalf("edit: %q not in the source", pairs[i])
		}
		src = strings.Replace(src, pairs[i], pairs[i+1], 1)
	}
	return src
}

// lineOf is the 1-based line of src holding marker, 0 when none does.
func lineOf(src, marker string) int {
	for i, line := range strings.Split(src, "\n") {
		if strings.Contains(line, marker) {
			return i + 1
		}
	}
	return 0
}

func problems(err error) []*registry.Problem {
	var out []*registry.Problem
	var errs []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	for _, e := range errs {
		var p *registry.Problem
		if errors.As(e, &p) {
			out = append(out, p)
		} else {
			out = append(out, &registry.Problem{Rule: "not a *Problem", Message: e.Error()})
		}
	}
	return out
}

func TestCompatible(t *testing.T) {
	prev := version(t, shopV1, 1)
	for _, tc := range []struct {
		name  string
		edits []string // old, new, old, new, ...
		rule  string   // "" when the change is allowed
		at    string   // text on the line the problem must point at: in the new version, or the old one when removed
	}{
		// Refused.
		{"event type removed", []string{`option (clickstream.v1.event) = {type: "refund" id_field: "event_id" time_field: "event_time"};`, ""},
			registry.RuleTypeRemoved, "message Refund {"},
		{"event type renamed", []string{`type: "refund"`, `type: "refund_issued"`}, registry.RuleTypeRenamed, `type: "refund_issued"`},
		{"event message renamed", []string{"message Refund {", "message MoneyBack {"}, registry.RuleTypeRenamed, `type: "refund"`},
		{"id field changed", []string{`type: "checkout" id_field: "event_id"`, `type: "checkout" id_field: "note"`}, registry.RuleIDFieldChanged, `type: "checkout"`},
		{"time field changed", []string{`type: "checkout" id_field: "event_id" time_field: "event_time"`, `type: "checkout" id_field: "event_id"`},
			registry.RuleTimeFieldChanged, `type: "checkout"`},
		{"field removed", []string{"  string note = 7;\n", ""}, registry.RuleFieldRemoved, "string note = 7;"},
		{"field renumbered", []string{"string note = 7;", "string note = 10;"}, registry.RuleFieldRenumbered, "string note = 10;"},
		{"field renamed", []string{"string note = 7;", "string comment = 7;"}, registry.RuleFieldRenamed, "string comment = 7;"},
		{"scalar retyped", []string{"int32 quantity = 3;", "int64 quantity = 3;"}, registry.RuleFieldRetyped, "int64 quantity = 3;"},
		{"nested field retyped", []string{"int64 price = 2;", "double price = 2;"}, registry.RuleFieldRetyped, "double price = 2;"},
		{"message field retyped", []string{"repeated Item items = 4;", "repeated Refund items = 4;"}, registry.RuleFieldRetyped, "repeated Refund items = 4;"},
		{"enum field retyped", []string{"Color color = 6;", "int32 color = 6;"}, registry.RuleFieldRetyped, "int32 color = 6;"},
		{"map value retyped", []string{"map<string, string> labels = 5;", "map<string, int64> labels = 5;"}, registry.RuleFieldRetyped, "labels = 5;"},
		{"made repeated", []string{"string note = 7;", "repeated string note = 7;"}, registry.RuleFieldCardinality, "repeated string note = 7;"},
		{"made singular", []string{"repeated Item items = 4;", "Item items = 4;"}, registry.RuleFieldCardinality, "Item items = 4;"},
		{"map made repeated", []string{"map<string, string> labels = 5;", "repeated string labels = 5;"}, registry.RuleFieldCardinality, "repeated string labels = 5;"},
		{"enum value removed", []string{"  COLOR_BLUE = 2;\n", ""}, registry.RuleEnumValueRemoved, "COLOR_BLUE = 2;"},
		{"enum value renamed", []string{"COLOR_BLUE = 2;", "COLOR_AZURE = 2;"}, registry.RuleEnumValueRemoved, "COLOR_AZURE = 2;"},

		// Allowed.
		{"nothing changed", nil, "", ""},
		{"field added", []string{"string note = 7;", "string note = 7;\n  string coupon = 11;"}, "", ""},
		{"nested field added", []string{"int64 price = 2;", "int64 price = 2;\n  string name = 3;"}, "", ""},
		{"event type added", []string{"message Item {", "message Cancel {\n  option (clickstream.v1.event) = {type: \"cancel\"};\n  string reason = 1;\n}\n\nmessage Item {"}, "", ""},
		{"enum value added", []string{"COLOR_BLUE = 2;", "COLOR_BLUE = 2;\n  COLOR_GREEN = 3;"}, "", ""},
		{"optional added", []string{"string note = 7;", "optional string note = 7;"}, "", ""},
		{"oneof membership changed", []string{"  string note = 7;\n", "", "string voucher = 9;", "string voucher = 9;\n    string note = 7;"}, "", ""},
		{"rules changed", []string{"(buf.validate.field).string.uuid = true", "(buf.validate.field).string.min_len = 1"}, "", ""},
		{"comments added", []string{"message Item {", "// Item is one line of the basket.\nmessage Item {"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := edit(t, shopV1, tc.edits...)
			next := version(t, src, 2)
			err := registry.Compatible(prev, next)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("Compatible = %v, want nil", err)
				}
				return
			}
			ps := problems(err)
			if len(ps) != 1 {
				t.Fatalf("Compatible = %v, want one %s problem", err, tc.rule)
			}
			p := ps[0]
			t.Logf("%v", p)
			if p.Rule != tc.rule {
				t.Errorf("rule %s, want %s", p.Rule, tc.rule)
			}
			line := lineOf(src, tc.at)
			if line == 0 {
				line = lineOf(shopV1, tc.at) // removed: the old version's line
			}
			if want := fmt.Sprintf("%s:%d:", shopFile, line); !strings.HasPrefix(p.Pos, want) || !regexp.MustCompile(`:\d+:\d+$`).MatchString(p.Pos) {
				t.Errorf("at %q, want %s<col>", p.Pos, want)
			}
			if !strings.HasPrefix(p.Error(), p.Pos+": ") || !strings.HasSuffix(p.Error(), "("+tc.rule+")") {
				t.Errorf("Error() = %q, want %q: ... (%s)", p.Error(), p.Pos, tc.rule)
			}
		})
	}
}

func TestCompatibleReportsEveryProblemOnce(t *testing.T) {
	prev := version(t, shopV1, 1)
	// Item is reached by Checkout only, but Color by two fields: a change to it is reported once.
	next := version(t, edit(t, shopV1,
		"string note = 7;", "int64 note = 7;",
		"int64 price = 2;", "string price = 2;",
		"Color color = 6;", "Color color = 6;\n  Color color2 = 12;",
		"  COLOR_BLUE = 2;\n", "",
		`type: "refund"`, `type: "refund2"`,
	), 2)
	var rules []string
	for _, p := range problems(registry.Compatible(prev, next)) {
		rules = append(rules, p.Rule)
	}
	slices.Sort(rules)
	want := []string{registry.RuleEnumValueRemoved, registry.RuleFieldRetyped, registry.RuleFieldRetyped, registry.RuleTypeRenamed}
	if !slices.Equal(rules, want) {
		t.Errorf("rules = %v, want %v", rules, want)
	}
	if err := registry.Compatible(nil, next); err != nil {
		t.Errorf("Compatible(nil, next) = %v, want nil: a first version follows nothing", err)
	}
}

func TestCompatibleWithoutSources(t *testing.T) {
	// The compiled-in registry carries no source info: a problem names the file alone.
	def := registry.Default()
	set := registry.DefaultDescriptorSet()
	for _, f := range set.GetFile() {
		if f.GetName() != "clickstream/events/v1/click.proto" {
			continue
		}
		msg := f.GetMessageType()[0]
		msg.Field = msg.GetField()[:len(msg.GetField())-1] // drop the last field
	}
	next, err := registry.FromDescriptorSet(set, 2)
	if err != nil {
		t.Fatal(err)
	}
	ps := problems(registry.Compatible(def, next))
	if len(ps) != 1 || ps[0].Rule != registry.RuleFieldRemoved || ps[0].Pos != "clickstream/events/v1/click.proto" {
		t.Fatalf("problems = %v, want one field-removed at clickstream/events/v1/click.proto", ps)
	}
}

func TestDiff(t *testing.T) {
	a := version(t, shopV1, 1)
	b := version(t, edit(t, shopV1,
		"int32 quantity = 3;", "int64 quantity = 3;",
		"  string note = 7;\n", "  string coupon = 11;\n",
		"(buf.validate.field).string.min_len = 1", "(buf.validate.field).string.min_len = 3",
		"COLOR_BLUE = 2;", "COLOR_BLUE = 2;\n  COLOR_GREEN = 3;",
		"COLOR_RED = 1;", "COLOR_CRIMSON = 1;",
		"string voucher = 9;", "string voucher = 10;",
		`type: "refund" id_field: "event_id"`, `type: "refund"`,
		"message Item {", "message Cancel {\n  option (clickstream.v1.event) = {type: \"cancel\"};\n  string reason = 1;\n}\n\nmessage Item {",
	), 2)
	want := []string{
		"+ enum value shop.v1.Color.COLOR_CRIMSON = 1",
		"+ enum value shop.v1.Color.COLOR_GREEN = 3",
		"+ field checkout.coupon string = 11",
		"+ field checkout.voucher string = 10",
		"+ type cancel (shop.v1.Cancel)",
		"- enum value shop.v1.Color.COLOR_RED = 1",
		"- field checkout.note string = 7",
		"- field checkout.voucher string = 9",
		"~ field checkout.quantity int32 -> int64",
		"~ rules checkout.items.sku",
		"~ type refund id_field event_id -> (none)",
	}
	if got := registry.Diff(a, b); !slices.Equal(got, want) {
		t.Errorf("Diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := registry.Diff(a, a); len(got) != 0 {
		t.Errorf("Diff(a, a) = %q, want none", got)
	}
	if got, want := registry.Diff(nil, a), []string{"+ type checkout (shop.v1.Checkout)", "+ type refund (shop.v1.Refund)"}; !slices.Equal(got, want) {
		t.Errorf("Diff(nil, a) = %q, want %q", got, want)
	}
	if got, want := registry.Diff(b, a), []string{"- type cancel (shop.v1.Cancel)"}; !slices.Contains(got, want[0]) {
		t.Errorf("Diff(b, a) = %q, want it to contain %q", got, want[0])
	}
}
