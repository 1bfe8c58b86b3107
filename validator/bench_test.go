package validator

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/protobuf/proto"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/validator/validatortest"
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

// runtimeRegistry is the example schemas loaded at run time, as a push brings schemas: the same
// messages, but no generated Go types behind them, so DecoderAuto decodes them with hyperpb.
func runtimeRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	reg, err := registry.FromDescriptorSet(registry.DefaultDescriptorSet(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// BenchmarkCheck measures decode + validate of one valid event per schema: the baseline, then
// Checker.Check (the validator's real entry point) with each decoder on the compiled-in
// registry, then "runtime": the same schemas loaded at run time (runtimeRegistry) with the
// default decoder, which is what every pushed schema version runs. Goals: Check with the default
// decoder at <= 0.6x the baseline's ns/op and <= 5 allocs/op; runtime at <= 1.0x generated's
// ns/op. TestBenchmarkRatios prints the ratios of one run in CPU time.
func BenchmarkCheck(b *testing.B) {
	runtime := newTestChecker(b, DecoderAuto, runtimeRegistry(b))
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
		m := metaFor(typ, 1)
		b.Run(typ+"/runtime", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; b.Loop(); i++ {
				res, err := runtime.Check(typ, events[i%len(events)], m)
				if err != nil || !res.Valid() {
					b.Fatal(res, err)
				}
			}
		})
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

// TestBenchmarkRatios measures BenchmarkCheck's cases interleaved in one process, in process CPU
// time (utime + stime, which other processes on a shared machine do not inflate the way they
// inflate wall time), and prints each decoder's cost relative to the baseline: the median of
// the rounds, CPU-ns per event, and allocations per event. It runs only when
// VALIDATOR_BENCH_RATIOS=1 (about 30 s):
//
//	VALIDATOR_BENCH_RATIOS=1 go test -run TestBenchmarkRatios -v .
func TestBenchmarkRatios(t *testing.T) {
	if os.Getenv("VALIDATOR_BENCH_RATIOS") != "1" {
		t.Skip("set VALIDATOR_BENCH_RATIOS=1 to measure")
	}
	const rounds, perRound = 7, 20000
	names := append([]string{"baseline"}, decoders...)
	names = append(names, "runtime")
	runtime := newTestChecker(t, DecoderAuto, runtimeRegistry(t))
	var out strings.Builder
	fmt.Fprintf(&out, "%-12s %-10s %12s %8s %7s %9s\n", "type", "decoder", "cpu-ns/event", "allocs", "ratio", "/generated")
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		events := benchEvents(typ)
		m := metaFor(typ, 1)
		run := map[string]func(i int){"baseline": func(i int) { _ = baseline(et, events[i%len(events)]) }}
		for _, dec := range decoders {
			c := newTestChecker(t, dec, nil)
			run[dec] = func(i int) { _, _ = c.Check(typ, events[i%len(events)], m) }
		}
		run["runtime"] = func(i int) { _, _ = runtime.Check(typ, events[i%len(events)], m) }
		cpu := map[string][]float64{}
		for range rounds { // interleaved: baseline, decoders, baseline, ...
			for _, name := range names {
				f := run[name]
				for i := range 1000 { // warm up
					f(i)
				}
				start := cpuTime()
				for i := range perRound {
					f(i)
				}
				cpu[name] = append(cpu[name], float64(cpuTime()-start)/perRound)
			}
		}
		base, gen := median(cpu["baseline"]), median(cpu[DecoderGenerated])
		for _, name := range names {
			f := run[name]
			i := 0
			allocs := testing.AllocsPerRun(1000, func() { f(i); i++ })
			fmt.Fprintf(&out, "%-12s %-10s %12.0f %8.1f %7.2f %9.2f\n", typ, name, median(cpu[name]), allocs,
				median(cpu[name])/base, median(cpu[name])/gen)
		}
	}
	t.Log("\n" + out.String())
}

// cpuTime is the process's user + system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkLoop measures the whole validator against kfake in process: b.N raw events (the
// mixed examples) produced up front, then the time until every one is committed to an output.
// It reports events/s; kfake shares the CPU, so this is a lower bound for a real broker.
//
//	go test -run '^$' -bench BenchmarkLoop -benchtime 20000x .
func BenchmarkLoop(b *testing.B) {
	for _, dec := range decoders {
		b.Run(dec, func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, contractTopics()...),
				kfake.GroupMinSessionTimeout(100*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			events := validatortest.Mixed(kafka.DefaultRawTopicPattern, 0, b.N, testBase)
			ctx := context.Background()
			if err := validatortest.Produce(ctx, c.ListenAddrs(), events); err != nil {
				b.Fatal(err)
			}
			cfg := testConfig(c.ListenAddrs())
			cfg.Decoder = dec
			reg := prometheus.NewRegistry()
			v, err := New(cfg, run.Deps{Reg: reg, Schemas: schemastore.Static(registry.Default())})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- v.Run(rctx) }()
			for {
				var n float64
				for _, t := range append(registry.Default().Names(), kafka.UnknownType) {
					n += testutil.ToFloat64(v.m.received.WithLabelValues(t))
				}
				if n >= float64(b.N) {
					break
				}
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("%v of %d events after 5 minutes", n, b.N)
				}
				time.Sleep(5 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}
