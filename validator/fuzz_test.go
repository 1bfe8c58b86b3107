package validator

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

// FuzzCheck feeds arbitrary bytes as every event type (and an unknown one). Check must never
// panic, never report a broken schema (the example schemas are sound), and always return either
// a valid verdict or one well-formed DeadLetter; both decoders must reach the same verdict.
//
//	go test -run '^$' -fuzz FuzzCheck -fuzztime 30s .
func FuzzCheck(f *testing.F) {
	types := append(append([]string(nil), samples.Types...), "checkout_started")
	for i, typ := range samples.Types {
		f.Add(samples.Marshal(samples.Event(typ, i, testAt)), uint8(i))
	}
	for _, inv := range samples.Invalids(testAt) {
		f.Add(inv.Bytes, uint8(slices.Index(types, inv.Type)))
	}
	for i, typ := range samples.Types { // two events in one: every field set twice
		f.Add(append(samples.Marshal(samples.Event(typ, i, testAt)), samples.Marshal(samples.Event(typ, i+1, testAt))...), uint8(i))
	}
	hyper := newTestChecker(f, DecoderHyperPB, nil)
	generated := newTestChecker(f, DecoderGenerated, nil)
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		typ := types[int(which)%len(types)]
		m := metaFor(typ, 7)
		got := make([]Result, 2)
		for i, c := range []*Checker{hyper, generated} {
			res, err := c.Check(typ, data, m)
			if err != nil {
				t.Fatalf("Check(%s) error: %v", typ, err)
			}
			if dl := res.DeadLetter; dl != nil {
				if dl.Kind == clickstreamv1.FailureKind_FAILURE_KIND_UNSPECIFIED {
					t.Fatal("dead letter without kind")
				}
				if !bytes.Equal(dl.EventBytes, data) || dl.EventType != typ || dl.SourceOffset != 7 {
					t.Fatal("dead letter does not carry the raw event")
				}
				if (dl.Kind == clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED) != (len(dl.Violations) > 0) {
					t.Fatalf("%v with %d violations", dl.Kind, len(dl.Violations))
				}
				if dl.Error == "" {
					t.Fatal("dead letter without error text")
				}
				if _, err := proto.Marshal(dl); err != nil {
					t.Fatalf("dead letter does not encode: %v", err)
				}
			}
			got[i] = res
		}
		if verdict(got[0]) != verdict(got[1]) {
			t.Fatalf("decoders disagree on %s %x:\n hyperpb:   %s\n generated: %s", typ, data, verdict(got[0]), verdict(got[1]))
		}
		if want := referenceViolations(typ, data); want != nil {
			for i, res := range got {
				if v := violationSet(res); v != *want {
					t.Fatalf("decoder %d on %s %x: violations\n%s\nwant (protovalidate alone)\n%s", i, typ, data, v, *want)
				}
			}
		}
	})
}

// referenceViolations judges data as protovalidate alone does (generated message, global
// validator): the sorted violations, "" when valid, "decode error" when it does not decode; nil
// for a type without generated code.
func referenceViolations(typ string, data []byte) *string {
	et, ok := registry.Default().Lookup(typ)
	if !ok || et.GoType() == nil {
		return nil
	}
	m := et.GoType().New().Interface()
	var s string
	if err := proto.Unmarshal(data, m); err != nil {
		s = "decode error"
		return &s
	}
	err := protovalidate.Validate(m)
	var verr *protovalidate.ValidationError
	if err != nil && !errors.As(err, &verr) {
		s = "error: " + err.Error()
		return &s
	}
	var lines []string
	if verr != nil {
		for _, v := range verr.Violations {
			lines = append(lines, protovalidate.FieldPathString(v.Proto.GetField())+" "+v.Proto.GetRuleId()+" "+v.Proto.GetMessage())
		}
	}
	slices.Sort(lines)
	s = strings.Join(lines, "\n")
	return &s
}

// violationSet renders r's violations as referenceViolations does.
func violationSet(r Result) string {
	if r.DeadLetter == nil {
		return ""
	}
	if r.DeadLetter.Kind == clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR {
		return "decode error"
	}
	var lines []string
	for _, v := range r.DeadLetter.Violations {
		lines = append(lines, v.FieldPath+" "+v.RuleId+" "+v.Message)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// verdict summarises a Result for comparison: valid, or the kind and sorted rule ids.
func verdict(r Result) string {
	if r.DeadLetter == nil {
		return "valid"
	}
	var b bytes.Buffer
	b.WriteString(r.DeadLetter.Kind.String())
	for _, id := range ruleIDs(r.DeadLetter) {
		b.WriteString(" " + id)
	}
	return b.String()
}
