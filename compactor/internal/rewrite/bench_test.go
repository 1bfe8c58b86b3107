package rewrite

// Compaction throughput and memory, beside parquet-go reading and writing the same files.
//
//	go test ./internal/rewrite -run '^$' -bench . -benchtime 3x -cpu 1
//
// Each benchmark reports rows/s (wall clock), rows/cpu-s (rows per second of CPU time the process
// used, user + system: the per-core figure, robust to a shared machine), peak-heap-MiB (the
// highest Go heap, garbage included, sampled every 10 ms), peak-live-MiB (the highest heap
// still reachable at the end of a GC cycle) and peak-rss-MiB (VmHWM after resetting it).
// The partition is benchPartitionFiles lakewriter-shaped files of purchase events (nested structs,
// a list of structs, optional fields, timestamps), 5% of rows re-delivered duplicates.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

const (
	benchPartitionFiles = 40
	benchRowsPerFile    = 5000
)

var (
	benchOnce  sync.Once
	benchDir   string
	benchFiles []string
	benchErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchPartition(b *testing.B) []string {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "compactor-bench-*")
		if benchErr != nil {
			return
		}
		benchFiles, _ = partition(b, benchDir, "purchase", benchPartitionFiles, benchRowsPerFile, benchRowsPerFile/20)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchFiles
}

// usage samples what one benchmark loop costs.
type usage struct {
	cpu0     time.Duration
	stop     chan struct{}
	done     chan struct{}
	peakHeap uint64
	peakLive uint64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startUsage() *usage {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM (Linux)
	u := &usage{cpu0: cpuTime(), stop: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	go func() {
		defer close(u.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			u.peakHeap = max(u.peakHeap, sample[0].Value.Uint64())
			u.peakLive = max(u.peakLive, sample[1].Value.Uint64())
			select {
			case <-u.stop:
				return
			case <-t.C:
			}
		}
	}()
	return u
}

func vmHWM() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func (u *usage) report(b *testing.B, rows int64) {
	cpu := cpuTime() - u.cpu0
	close(u.stop)
	<-u.done
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/cpu.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(u.peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(u.peakLive)/(1<<20), "peak-live-MiB")
	b.ReportMetric(vmHWM(), "peak-rss-MiB")
}

func BenchmarkCompact(b *testing.B) {
	files := benchPartition(b)
	for _, tc := range []struct {
		name        string
		sortBuffer  int64
		rowGroup    int64
		targetBytes int64
	}{
		{"in-memory", 256 << 20, 128 << 20, 512 << 20},          // the whole partition sorted in memory
		{"defaults-64MiB-runs", 64 << 20, 128 << 20, 512 << 20}, // the compactor's defaults
		{"spill-16MiB-runs", 16 << 20, 8 << 20, 512 << 20},      // small buffers: memory floor
	} {
		b.Run(tc.name, func(b *testing.B) {
			opt := testOptions()
			opt.BatchRows = 4096
			opt.SortBufferBytes, opt.RowGroupBytes, opt.TargetFileBytes = tc.sortBuffer, tc.rowGroup, tc.targetBytes
			opt.SpillDir = b.TempDir()
			out := b.TempDir()
			var rows, bytesOut int64
			var runs int
			u := startUsage()
			for b.Loop() {
				create := func(i int) (io.WriteCloser, error) {
					return os.Create(filepath.Join(out, fmt.Sprintf("part-%d.parquet", i)))
				}
				res, err := Rewrite(context.Background(), inputsOf(files), create, opt)
				if err != nil {
					b.Fatal(err)
				}
				rows += res.RowsIn
				bytesOut, runs = res.BytesOut(), res.Runs
			}
			u.report(b, rows)
			b.ReportMetric(float64(bytesOut)/(1<<20), "out-MiB")
			b.ReportMetric(float64(runs), "runs")
		})
	}
}

// BenchmarkParquetGoCopy reads the same files with parquet-go and writes their rows into one
// zstd file: the floor of a rewrite (no deduplication, no sort).
func BenchmarkParquetGoCopy(b *testing.B) {
	files := benchPartition(b)
	out := b.TempDir()
	var rows int64
	u := startUsage()
	for b.Loop() {
		rows += parquetGoCopy(b, files, filepath.Join(out, "copy.parquet"))
	}
	u.report(b, rows)
	if st, err := os.Stat(filepath.Join(out, "copy.parquet")); err == nil {
		b.ReportMetric(float64(st.Size())/(1<<20), "out-MiB")
	}
}

func parquetGoCopy(b *testing.B, files []string, to string) int64 {
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	var w *parquet.Writer
	buf := make([]parquet.Row, 1024)
	var n int64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		if w == nil {
			w = parquet.NewWriter(dst, pf.Schema(), parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}))
		}
		for _, rg := range pf.RowGroups() {
			rr := rg.Rows()
			for {
				k, err := rr.ReadRows(buf)
				if k > 0 {
					if _, werr := w.WriteRows(buf[:k]); werr != nil {
						b.Fatal(werr)
					}
					n += int64(k)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			_ = rr.Close()
		}
		f.Close()
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return n
}
