package validator

import (
	"bytes"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
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
	})
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
