package validator

import (
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/events/v1"
	"github.com/clickstream/clickstream/schemas/samples"
)

// TestNativeMatchesProtovalidate: the hand-checked uuid rule reports exactly what protovalidate
// reports, on every field path it covers.
func TestNativeMatchesProtovalidate(t *testing.T) {
	t.Parallel()
	cases := map[string]func(proto.Message){
		"valid":                  func(proto.Message) {},
		"empty event id":         func(m proto.Message) { m.(*eventsv1.Click).EventId = "" },
		"upper-case ids":         func(m proto.Message) { m.(*eventsv1.Click).SessionId = "2C71B7C1-5D5B-4000-8000-00000000000A" },
		"bad nested device id":   func(m proto.Message) { m.(*eventsv1.Click).Context.Device.DeviceId = "not-a-uuid" },
		"uuid with a newline":    func(m proto.Message) { m.(*eventsv1.Click).EventId = "2c71b7c1-5d5b-4000-8000-000000000001\n" },
		"braces":                 func(m proto.Message) { m.(*eventsv1.Click).EventId = "{2c71b7c1-5d5b-4000-8000-00000000001}" },
		"no device":              func(m proto.Message) { m.(*eventsv1.Click).Context.Device = nil },
		"no context, bad ids":    func(m proto.Message) { c := m.(*eventsv1.Click); c.Context, c.EventId, c.SessionId = nil, "x", "" },
		"dashes moved":           func(m proto.Message) { m.(*eventsv1.Click).EventId = "2c71b7c15-d5b-4000-8000-000000000001" },
		"non-hex":                func(m proto.Message) { m.(*eventsv1.Click).EventId = "2c71b7g1-5d5b-4000-8000-000000000001" },
		"everything else broken": func(m proto.Message) { c := m.(*eventsv1.Click); c.X, c.EventId = -1, "y" },
	}
	for _, dec := range decoders {
		c := newTestChecker(t, dec, nil)
		for name, mutate := range cases {
			m := samples.Event("click", 3, testAt)
			mutate(m)
			b := samples.Marshal(m)
			res, err := c.Check("click", b, metaFor("click", 1))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := violationSet(res), *referenceViolations("click", b); got != want {
				t.Errorf("%s/%s: violations\n%s\nwant\n%s", dec, name, got, want)
			}
		}
	}
	for _, typ := range samples.Types {
		for _, inv := range samples.Invalids(testAt) {
			if inv.Type != typ {
				continue
			}
			res, err := newTestChecker(t, DecoderGenerated, nil).Check(typ, inv.Bytes, metaFor(typ, 1))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := violationSet(res), *referenceViolations(typ, inv.Bytes); got != want {
				t.Errorf("%s: violations\n%s\nwant\n%s", inv.Name, got, want)
			}
		}
	}
}

func TestNativePlans(t *testing.T) {
	t.Parallel()
	c := newTestChecker(t, DecoderGenerated, nil)
	var names []string
	for fd := range c.native.skip {
		names = append(names, string(fd.FullName()))
	}
	if len(names) < 5 {
		t.Errorf("hand-checked uuid fields: %v", names)
	}
}

func TestIsUUID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"2c71b7c1-5d5b-4000-8000-000000000001":  true,
		"2C71B7C1-5D5B-4000-8000-00000000000F":  true,
		"2c71b7c1-5d5b-4000-8000-00000000000":   false,
		"2c71b7c1-5d5b-4000-8000-0000000000011": false,
		"2c71b7c1x5d5b-4000-8000-000000000001":  false,
		"2c71b7c1-5d5b-4000-8000-00000000000g":  false,
		"":                                      false,
	} {
		if got := isUUID(s); got != want {
			t.Errorf("isUUID(%q) = %v", s, got)
		}
	}
}

// TestCheckMergedEvents: two events concatenated are one legal event (protobuf merges them:
// singular fields set twice, lists and maps appended, oneofs switched), a shape real clients
// never send but the decoders must agree on, with protovalidate alone as the reference.
func TestCheckMergedEvents(t *testing.T) {
	t.Parallel()
	for _, dec := range decoders {
		c := newTestChecker(t, dec, nil)
		for _, typ := range samples.Types {
			for i := range 6 {
				b := append(samples.Marshal(samples.Event(typ, i, testAt)), samples.Marshal(samples.Event(typ, i+1, testAt))...)
				res, err := c.Check(typ, b, metaFor(typ, 1))
				if err != nil {
					t.Fatal(err)
				}
				if got, want := violationSet(res), *referenceViolations(typ, b); got != want {
					t.Errorf("%s/%s %d+%d: violations\n%s\nwant\n%s", dec, typ, i, i+1, got, want)
				}
			}
		}
	}
}
