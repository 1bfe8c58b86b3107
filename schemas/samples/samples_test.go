package samples_test

import (
	"slices"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

var at = time.Date(2026, 11, 22, 13, 4, 5, 600_000_000, time.UTC)

// TestValidEventsPassTheRules checks the samples against the schemas' own buf.validate rules, so
// a rule that refuses realistic data (or a sample that drifted) fails here first.
func TestValidEventsPassTheRules(t *testing.T) {
	t.Parallel()
	for _, typ := range samples.Types {
		for i := range 20 {
			m := samples.Event(typ, i, at)
			if err := protovalidate.Validate(m); err != nil {
				t.Errorf("%s #%d: %v", typ, i, err)
			}
			et, ok := registry.Default().Lookup(typ)
			if !ok || et.Message.FullName() != m.ProtoReflect().Descriptor().FullName() {
				t.Errorf("%s: sample is %s, registry says %v", typ, m.ProtoReflect().Descriptor().FullName(), et.Message)
			}
		}
	}
}

func TestEventsDiffer(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, typ := range samples.Types {
		for i := range 50 {
			b := string(samples.Marshal(samples.Event(typ, i, at)))
			if seen[b] {
				t.Fatalf("%s #%d repeats an earlier event", typ, i)
			}
			seen[b] = true
		}
	}
}

// TestInvalidEventsBreakTheExpectedRules checks that each invalid sample fails exactly as its
// table says: unknown type, decode error, or the listed rule ids.
func TestInvalidEventsBreakTheExpectedRules(t *testing.T) {
	t.Parallel()
	for _, inv := range samples.Invalids(at) {
		t.Run(inv.Name, func(t *testing.T) {
			et, known := registry.Default().Lookup(inv.Type)
			if inv.Kind == clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE {
				if known {
					t.Fatalf("type %q is known, want unknown", inv.Type)
				}
				return
			}
			if !known {
				t.Fatalf("type %q unknown", inv.Type)
			}
			m := et.NewMessage()
			err := proto.Unmarshal(inv.Bytes, m)
			if inv.Kind == clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR {
				if err == nil {
					t.Fatal("decoded, want a decode error")
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			verr := protovalidate.Validate(m)
			var got []string
			if ve, ok := verr.(*protovalidate.ValidationError); ok {
				for _, v := range ve.Violations {
					got = append(got, v.Proto.GetRuleId())
				}
			} else if verr != nil {
				t.Fatalf("validate: %v", verr)
			}
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, inv.RuleIDs) {
				t.Errorf("rule ids %v, want %v (%v)", got, inv.RuleIDs, verr)
			}
		})
	}
}
