package validator

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

// benchEvents are 64 valid events of typ, covering its optional and oneof shapes.
func benchEvents(typ string) [][]byte {
	out := make([][]byte, 64)
	for i := range out {
		out[i] = samples.Marshal(samples.Event(typ, i, testAt))
	}
	return out
}

// baseline is the reference cost of judging one event: a new generated message,
// proto.Unmarshal, and protovalidate's global validator.
func baseline(et registry.EventType, b []byte) error {
	m := et.GoType().New().Interface()
	if err := proto.Unmarshal(b, m); err != nil {
		return err
	}
	return protovalidate.Validate(m)
}

// BenchmarkCheck measures decode + validate of one valid event per schema: the baseline, then
// Checker.Check (the validator's real entry point) with each decoder. The goal is Check with the
// default decoder at <= 0.6x the baseline's ns/op and <= 5 allocs/op; TestBenchmarkRatios
// prints the ratios of one run.
func BenchmarkCheck(b *testing.B) {
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		events := benchEvents(typ)
		var size int
		for _, e := range events {
			size += len(e)
		}
		size /= len(events)
		b.Run(typ+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				if err := baseline(et, events[i%len(events)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, dec := range decoders {
			c := newTestChecker(b, dec, nil)
			m := metaFor(typ, 1)
			b.Run(typ+"/"+dec, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for i := 0; b.Loop(); i++ {
					res, err := c.Check(typ, events[i%len(events)], m)
					if err != nil || !res.Valid() {
						b.Fatal(res, err)
					}
				}
			})
		}
	}
}

// BenchmarkCheckInvalid measures the refusal path: every invalid example in turn, each
// producing a DeadLetter.
func BenchmarkCheckInvalid(b *testing.B) {
	invs := samples.Invalids(testAt)
	for _, dec := range decoders {
		c := newTestChecker(b, dec, nil)
		b.Run(dec, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				inv := invs[i%len(invs)]
				res, err := c.Check(inv.Type, inv.Bytes, metaFor(inv.Type, 1))
				if err != nil || res.Valid() {
					b.Fatal(res, err)
				}
			}
		})
	}
}

// TestBenchmarkRatios runs BenchmarkCheck's cases interleaved in one process and prints each
// decoder's cost relative to the baseline. It runs only when VALIDATOR_BENCH_RATIOS=1 (it takes
// about 20 s):
//
//	VALIDATOR_BENCH_RATIOS=1 go test -run TestBenchmarkRatios -v .
func TestBenchmarkRatios(t *testing.T) {
	if os.Getenv("VALIDATOR_BENCH_RATIOS") != "1" {
		t.Skip("set VALIDATOR_BENCH_RATIOS=1 to measure")
	}
	const rounds = 3
	var out strings.Builder
	fmt.Fprintf(&out, "%-12s %-10s %10s %8s %7s\n", "type", "decoder", "ns/event", "allocs", "ratio")
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		events := benchEvents(typ)
		m := metaFor(typ, 1)
		checkers := map[string]*Checker{}
		for _, dec := range decoders {
			checkers[dec] = newTestChecker(t, dec, nil)
		}
		best := map[string]testing.BenchmarkResult{}
		for range rounds { // interleaved: baseline, decoders, baseline, ...
			for _, name := range append([]string{"baseline"}, decoders...) {
				r := testing.Benchmark(func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; b.Loop(); i++ {
						e := events[i%len(events)]
						if name == "baseline" {
							_ = baseline(et, e)
						} else {
							_, _ = checkers[name].Check(typ, e, m)
						}
					}
				})
				if prev, ok := best[name]; !ok || r.NsPerOp() < prev.NsPerOp() {
					best[name] = r
				}
			}
		}
		base := float64(best["baseline"].NsPerOp())
		for _, name := range append([]string{"baseline"}, decoders...) {
			r := best[name]
			fmt.Fprintf(&out, "%-12s %-10s %10d %8d %7.2f\n", typ, name, r.NsPerOp(), r.AllocsPerOp(), float64(r.NsPerOp())/base)
		}
	}
	t.Log("\n" + out.String())
}
