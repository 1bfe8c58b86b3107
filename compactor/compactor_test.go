package compactor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickstream/clickstream/compactor/internal/lakefixture"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/lake/laketest"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const table = "purchase"

var part = lake.Partition{Date: "2026-11-22", Hour: "13"}

// testLake is a warehouse in a temporary directory, with the fake Hive Metastore or without one.
type testLake struct {
	t       testing.TB
	cfg     Config
	l       *lake.Lake
	hms     *laketest.Metastore
	offset  int64
	clock   time.Time
	columns []string // what visible reads; nil: every column
}

// keyColumns identify a row and its place in the sort order.
var keyColumns = []string{"event_id", "user_id", "event_time", "_kafka_offset"}

func newTestLake(t testing.TB, metastore bool) *testLake {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Telemetry.AdminAddr = ""
	cfg.Lake.URL = "file://" + t.TempDir()
	cfg.TargetFileBytes = 48 << 10
	cfg.RowGroupBytes = 16 << 10
	cfg.SpillDir = t.TempDir()
	tl := &testLake{t: t, cfg: cfg, clock: part.End().Add(3 * time.Hour)}
	if metastore {
		tl.hms = laketest.StartMetastore(t)
		tl.cfg.Lake.MetastoreURI = tl.hms.URI()
		tl.cfg.Lake.MetastoreRetries = 0
	}
	l, err := lake.Open(context.Background(), tl.cfg.Lake, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	tl.l = l
	if metastore {
		ctx := context.Background()
		if err := l.Metastore.EnsureDatabase(ctx, l.Layout.Database, l.FS.Location(l.Layout.DatabaseDir())); err != nil {
			t.Fatal(err)
		}
		err := l.Metastore.CreateTable(ctx, lake.Table{
			Database: l.Layout.Database, Name: table, Location: l.FS.Location(l.Layout.TableDir(table)),
			Columns: []lake.Column{{Name: "event_id", Type: "string"}}, PartitionKeys: lake.PartitionKeys,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return tl
}

// fileCache holds the Parquet files commit made, by content: the tests make the same ones
// many times, and writing them (protobuf reflection, parquet-go) is slow under the race detector.
var fileCache sync.Map

// lakeFile is a lakewriter file of events with Kafka offsets from offset on.
func lakeFile(t testing.TB, offset int64, events []int) []byte {
	key := fmt.Sprint(offset, events)
	if b, ok := fileCache.Load(key); ok {
		return b.([]byte)
	}
	et, _ := registry.Default().Lookup(table)
	var rows []map[string]any
	for _, i := range events {
		at := part.Start().Add(time.Duration(i%3600) * time.Second).Add(time.Duration(i) * time.Microsecond)
		rows = append(rows, lakefixture.Row(samples.Event(table, i, at), lakefixture.System{
			ReceivedAt: at, ReqGUID: fmt.Sprintf("req-%d", i/10), EventIndex: int32(i % 10), ConnGroup: "g",
			KafkaPartition: 0, KafkaOffset: offset,
		}))
		offset++
	}
	var buf bytes.Buffer
	if err := lakefixture.Write(&buf, lakefixture.Schema(et.Message), rows, 1000); err != nil {
		t.Fatal(err)
	}
	fileCache.Store(key, buf.Bytes())
	return buf.Bytes()
}

// commit writes a lakewriter file holding events into the partition directory and registers
// the partition.
func (tl *testLake) commit(events ...int) {
	tl.t.Helper()
	data := lakeFile(tl.t, tl.offset, events)
	tl.offset += int64(len(events))
	dir := tl.l.Layout.PartitionDir(table, part)
	if err := tl.l.FS.MkdirAll(dir); err != nil {
		tl.t.Fatal(err)
	}
	name := lake.DataFile{Topic: "clickstream-purchase-valid", FirstOffset: tl.offset - int64(len(events)), LastOffset: tl.offset - 1}.Name()
	w, err := tl.l.FS.Create(path.Join(dir, name))
	if err != nil {
		tl.t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		tl.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tl.t.Fatal(err)
	}
	if tl.hms != nil {
		err := tl.l.Metastore.AddPartitions(context.Background(), tl.l.Layout.Database, table,
			[]lake.PartitionInfo{{Values: part.Values(), Location: tl.l.FS.Location(dir)}})
		if err != nil {
			tl.t.Fatal(err)
		}
	}
}

// location is the directory readers read.
func (tl *testLake) location() string {
	tl.t.Helper()
	return tl.locationOf(table, part)
}

// locationOf is the directory readers read for partition p of table tbl.
func (tl *testLake) locationOf(tbl string, p lake.Partition) string {
	tl.t.Helper()
	if tl.hms == nil {
		return tl.l.Layout.PartitionDir(tbl, p)
	}
	info, err := tl.l.Metastore.GetPartition(context.Background(), tl.l.Layout.Database, tbl, p.Values())
	if err != nil {
		tl.t.Fatal(err)
	}
	return locationPath(info.Location)
}

// visible reads every row a query would read now, and the files it read. The tests that only
// check which rows are there and in what order read the key columns alone (keyColumns).
func (tl *testLake) visible() ([]map[string]any, []string) {
	tl.t.Helper()
	return tl.visibleIn(table, part)
}

// visibleIn is visible for partition p of table tbl.
func (tl *testLake) visibleIn(tbl string, p lake.Partition) ([]map[string]any, []string) {
	tl.t.Helper()
	loc := tl.locationOf(tbl, p)
	files, err := dataFiles(tl.l.FS, loc)
	if err != nil {
		tl.t.Fatalf("list location %s: %v", loc, err)
	}
	var rows []map[string]any
	var names []string
	for _, fi := range files {
		f, err := tl.l.FS.Open(path.Join(loc, fi.Name()))
		if err != nil {
			tl.t.Fatalf("a file the readers see is gone: %v", err)
		}
		r, err := lakefixture.ReadRows(f, f.Size(), tl.columns...)
		f.Close()
		if err != nil {
			tl.t.Fatal(err)
		}
		rows = append(rows, r...)
		names = append(names, fi.Name())
	}
	return rows, names
}

func (tl *testLake) compactor(hook func(string) error) *Compactor {
	tl.t.Helper()
	deps := run.Deps{Log: nil, Reg: telemetry.NewRegistry(), Health: telemetry.NewHealth()}
	c, err := New(tl.cfg, deps)
	if err != nil {
		tl.t.Fatal(err)
	}
	tl.t.Cleanup(func() { _ = c.Close() })
	c.now = func() time.Time { return tl.clock }
	if hook != nil {
		c.hook = hook
	}
	return c
}

func (tl *testLake) dirs() []string {
	tl.t.Helper()
	entries, err := tl.l.FS.ReadDir(path.Join(tl.l.Layout.DatabaseDir(), "_compacted", table, part.Path()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		tl.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func (tl *testLake) partitionFiles() []string {
	tl.t.Helper()
	files, err := dataFiles(tl.l.FS, tl.l.Layout.PartitionDir(table, part))
	if err != nil {
		tl.t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Name())
	}
	return out
}

// smallFiles commits 12 files of 50 events each, every file after the first repeating 12
// events of the one before (re-deliveries). It returns the distinct event count.
func (tl *testLake) smallFiles() int {
	for f := range 12 {
		var ev []int
		for j := range 50 {
			ev = append(ev, f*50+j)
		}
		if f > 0 {
			for j := range 12 {
				ev = append(ev, (f-1)*50+j)
			}
		}
		tl.commit(ev...)
	}
	return 600
}

func modes() []struct {
	name      string
	metastore bool
} {
	return []struct {
		name      string
		metastore bool
	}{{"metastore", true}, {"local", false}}
}

func TestCompactsLateFilesAndCleansUpAfterGrace(t *testing.T) {
	t.Parallel()
	for _, mode := range modes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, mode.metastore)
			distinct := tl.smallFiles()
			original, _ := tl.visible()
			want := lakefixture.Distinct(original)
			if len(original) != distinct+11*12 || len(want) != distinct {
				t.Fatalf("fixture: %d rows, %d distinct", len(original), len(want))
			}
			c := tl.compactor(nil)

			// Not sealed yet: nothing happens.
			tl.clock = part.End().Add(time.Hour)
			rep, err := c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 0 || rep.Partitions != 1 {
				t.Fatalf("before sealing: %+v, %v", rep, err)
			}

			tl.clock = part.End().Add(3 * time.Hour)
			rep, err = c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 1 {
				t.Fatalf("CompactOnce = %+v, %v", rep, err)
			}
			pr := rep.Compacted[0]
			wantFiles := int(math.Ceil(float64(pr.BytesIn) * float64(distinct) / float64(len(original)) / float64(tl.cfg.TargetFileBytes)))
			if pr.Generation != 1 || pr.FilesIn != 12 || pr.FilesOut != wantFiles || wantFiles < 2 ||
				pr.RowsIn != int64(len(original)) || pr.RowsOut != int64(distinct) || pr.Duplicates != 11*12 {
				t.Fatalf("report %+v, want %d files out", pr, wantFiles)
			}
			got, names := tl.visible()
			if d := lakefixture.Diff(want, got); d != "" {
				t.Fatalf("after compaction: %s", d)
			}
			if len(names) != wantFiles {
				t.Fatalf("readers see %v", names)
			}
			reg := c.m
			if v := testutil.ToFloat64(reg.rowsRead.WithLabelValues(table)); v != float64(len(original)) {
				t.Errorf("rows_read_total = %v", v)
			}
			if v := testutil.ToFloat64(reg.duplicates.WithLabelValues(table)) + testutil.ToFloat64(reg.rowsOut.WithLabelValues(table)); v != float64(len(original)) {
				t.Errorf("rows written + duplicates = %v, want rows read %d", v, len(original))
			}

			// Nothing more to do until late files arrive.
			if rep, err := c.CompactOnce(context.Background()); err != nil || len(rep.Compacted) != 0 {
				t.Fatalf("second scan: %+v, %v", rep, err)
			}

			// A late file: 50 new events and 30 repeats.
			var late []int
			for i := range 50 {
				late = append(late, 5000+i)
			}
			for i := range 30 {
				late = append(late, 300+i)
			}
			tl.commit(late...)
			tl.clock = tl.clock.Add(10 * time.Minute)
			rep, err = c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 1 || rep.Compacted[0].Generation != 2 || rep.Compacted[0].Duplicates != 30 {
				t.Fatalf("late file: %+v, %v", rep, err)
			}
			got, _ = tl.visible()
			all := append(slices.Clone(original), rowsOf(t, tl, late)...)
			want = lakefixture.Distinct(all)
			if d := lakefixture.Diff(want, got); d != "" {
				t.Fatalf("after the late file: %s", d)
			}
			if len(want) != distinct+50 {
				t.Fatalf("%d distinct rows, want %d", len(want), distinct+50)
			}

			// The grace period protects the replaced files; after it they go.
			if rep.Deleted != 0 {
				t.Fatalf("deleted %d within the grace period", rep.Deleted)
			}
			tl.clock = tl.clock.Add(tl.cfg.Grace + time.Minute)
			rep, err = c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 0 || rep.Deleted == 0 {
				t.Fatalf("cleanup: %+v, %v", rep, err)
			}
			if mode.metastore {
				if d := tl.dirs(); !slices.Equal(d, []string{"g000002"}) {
					t.Errorf("generations left: %v", d)
				}
				if f := tl.partitionFiles(); len(f) != 0 {
					t.Errorf("merged files left in the partition directory: %v", f)
				}
			} else if d := tl.dirs(); len(d) != 0 {
				t.Errorf("retired directories left: %v", d)
			}
			got, _ = tl.visible()
			if d := lakefixture.Diff(want, got); d != "" {
				t.Fatalf("after cleanup: %s", d)
			}
		})
	}
}

func rowsOf(t *testing.T, tl *testLake, events []int) []map[string]any {
	t.Helper()
	// The rows of the last committed file, read back.
	dir := tl.l.Layout.PartitionDir(table, part)
	name := lake.DataFile{Topic: "clickstream-purchase-valid", FirstOffset: tl.offset - int64(len(events)), LastOffset: tl.offset - 1}.Name()
	for _, d := range append([]string{dir}, tl.dirPaths()...) {
		f, err := tl.l.FS.Open(path.Join(d, name))
		if err != nil {
			continue
		}
		rows, err := lakefixture.ReadRows(f, f.Size(), tl.columns...)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	t.Fatalf("file %s not found", name)
	return nil
}

func (tl *testLake) dirPaths() []string {
	var out []string
	for _, d := range tl.dirs() {
		out = append(out, path.Join(tl.l.Layout.DatabaseDir(), "_compacted", table, part.Path(), d))
	}
	return out
}

// TestCrashAtEveryStep aborts a compaction at each step (as a crash would), checks that readers
// then see either the old rows or the compacted ones and that nothing they read is gone, and
// that a rerun ends with the one compacted copy.
func TestCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	steps := []string{"output", "written", "manifest", "swapped", "rescued", "deleted"}
	for _, mode := range modes() {
		for _, step := range steps {
			if step == "rescued" && mode.metastore {
				continue // no rescue with a metastore
			}
			t.Run(mode.name+"/"+step, func(t *testing.T) {
				t.Parallel()
				tl := newTestLake(t, mode.metastore)
				tl.columns = keyColumns
				tl.smallFiles()
				original, _ := tl.visible()
				want := lakefixture.Distinct(original)
				crash := errors.New("crash at " + step)
				var once sync.Once
				crashed := false
				hook := func(s string) error {
					var err error
					if s == step {
						once.Do(func() { err, crashed = crash, true })
					}
					if s == "manifest" && step == "rescued" {
						// A lakewriter commit racing with the swap: it lands in the directory
						// that is about to be retired.
						tl.commit(7000, 7001, 7002)
					}
					return err
				}
				c := tl.compactor(hook)
				if step == "deleted" {
					if _, err := c.CompactOnce(context.Background()); err != nil {
						t.Fatal(err)
					}
					tl.clock = tl.clock.Add(tl.cfg.Grace + time.Minute)
				}
				_, err := c.CompactOnce(context.Background())
				if !crashed || !errors.Is(err, crash) {
					t.Fatalf("CompactOnce = %v, want the injected crash", err)
				}
				got, _ := tl.visible()
				racer := step == "rescued" && len(got) == len(want)+3 &&
					lakefixture.Diff(lakefixture.Distinct(got), lakefixture.Distinct(append(slices.Clone(original), rowsOf(t, tl, []int{7000, 7001, 7002})...))) == ""
				if lakefixture.Diff(original, got) != "" && lakefixture.Diff(want, got) != "" && !racer {
					t.Fatalf("after a crash at %s readers see neither the old nor the compacted rows (%d rows)", step, len(got))
				}

				// The rerun, and one more scan to pick up what the crash left.
				c2 := tl.compactor(nil)
				for range 2 {
					if _, err := c2.CompactOnce(context.Background()); err != nil {
						t.Fatalf("rerun: %v", err)
					}
				}
				got, names := tl.visible()
				if step == "rescued" {
					want = lakefixture.Distinct(append(slices.Clone(original), rowsOf(t, tl, []int{7000, 7001, 7002})...))
				}
				if d := lakefixture.Diff(want, got); d != "" {
					t.Fatalf("after the rerun: %s (files %v)", d, names)
				}
				for _, n := range names {
					if !strings.HasPrefix(n, "c0000") {
						t.Fatalf("readers see an uncompacted file %s", n)
					}
				}
				// Past the grace period only the current generation is left.
				tl.clock = tl.clock.Add(tl.cfg.Grace + time.Minute)
				if _, err := c2.CompactOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
				if mode.metastore {
					if d := tl.dirs(); len(d) != 1 || path.Base(tl.location()) != d[0] {
						t.Errorf("generations left: %v, location %s", d, tl.location())
					}
				} else if d := tl.dirs(); len(d) != 0 {
					t.Errorf("directories left: %v", d)
				}
				got, _ = tl.visible()
				if d := lakefixture.Diff(want, got); d != "" {
					t.Fatalf("after cleanup: %s", d)
				}
			})
		}
	}
}

func TestCompactPartitionBeforeItIsSealed(t *testing.T) {
	t.Parallel()
	tl := newTestLake(t, true)
	tl.columns = keyColumns
	tl.smallFiles()
	original, _ := tl.visible()
	tl.clock = part.End().Add(-time.Minute)
	c := tl.compactor(nil)
	if rep, err := c.CompactOnce(context.Background()); err != nil || len(rep.Compacted) != 0 {
		t.Fatalf("CompactOnce before sealing = %+v, %v", rep, err)
	}
	pr, err := c.CompactPartition(context.Background(), table, part)
	if err != nil || pr == nil || pr.Generation != 1 {
		t.Fatalf("CompactPartition = %+v, %v", pr, err)
	}
	got, _ := tl.visible()
	if d := lakefixture.Diff(lakefixture.Distinct(original), got); d != "" {
		t.Fatal(d)
	}
	if pr, err := c.CompactPartition(context.Background(), table, part); err != nil || pr != nil {
		t.Fatalf("second CompactPartition = %+v, %v; want nothing to do", pr, err)
	}
}

func TestUnregisteredPartitionIsLeftAlone(t *testing.T) {
	t.Parallel()
	tl := newTestLake(t, true)
	tl.smallFiles()
	// Drop the registration: the fake has no drop call, so use another table name's directory.
	dir := tl.l.Layout.PartitionDir("click", part)
	if err := tl.l.FS.MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	src := tl.l.Layout.PartitionDir(table, part)
	files, _ := dataFiles(tl.l.FS, src)
	for _, f := range files[:2] {
		r, _ := tl.l.FS.Open(path.Join(src, f.Name()))
		b := make([]byte, r.Size())
		_, _ = r.ReadAt(b, 0)
		r.Close()
		w, _ := tl.l.FS.Create(path.Join(dir, f.Name()))
		_, _ = w.Write(b)
		_ = w.Close()
	}
	c := tl.compactor(nil)
	rep, err := c.CompactOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Compacted) != 1 || rep.Compacted[0].Table != table {
		t.Fatalf("report %+v: want only %s compacted", rep, table)
	}
}

func TestRunOnceAndAsAService(t *testing.T) {
	t.Parallel()
	tl := newTestLake(t, false)
	tl.smallFiles()
	tl.cfg.Once = true
	c := tl.compactor(nil)
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, _ := tl.visible(); len(got) != 600 {
		t.Fatalf("after Run once: %d rows", len(got))
	}

	tl2 := newTestLake(t, true)
	tl2.smallFiles()
	tl2.cfg.Interval = 10 * time.Millisecond
	c2 := tl2.compactor(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c2.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(tl2.location(), "_compacted") {
		if time.Now().After(deadline) {
			t.Fatal("the service did not compact the partition")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// The files-per-partition gauges count what readers see at each scan: the lakewriter's files
// before compaction, the generation's files after it (with a metastore the partition directory
// still holds the replaced files until the grace period ends; readers do not see them).
func TestScanCountsFilesReadersSee(t *testing.T) {
	t.Parallel()
	for _, mode := range modes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, mode.metastore)
			tl.columns = keyColumns
			tl.smallFiles()
			c := tl.compactor(nil)
			check := func(when string, partitions, files, most int) {
				t.Helper()
				got := []float64{
					testutil.ToFloat64(c.m.partitionsScanned.WithLabelValues(table)),
					testutil.ToFloat64(c.m.dataFiles.WithLabelValues(table)),
					testutil.ToFloat64(c.m.filesMax.WithLabelValues(table)),
				}
				if want := []float64{float64(partitions), float64(files), float64(most)}; !slices.Equal(got, want) {
					t.Fatalf("%s: partitions_scanned, data_files, partition_data_files_max = %v, want %v", when, got, want)
				}
			}

			tl.clock = part.End().Add(time.Hour) // not sealed: nothing compacted
			if rep, err := c.CompactOnce(context.Background()); err != nil || len(rep.Compacted) != 0 {
				t.Fatalf("first scan: %+v, %v", rep, err)
			}
			check("before compaction", 1, 12, 12)

			tl.clock = part.End().Add(3 * time.Hour)
			rep, err := c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 1 {
				t.Fatalf("second scan: %+v, %v", rep, err)
			}
			out := rep.Compacted[0].FilesOut
			if _, names := tl.visible(); len(names) != out || out >= 12 {
				t.Fatalf("readers see %v, report says %d files", names, out)
			}
			check("after compaction", 1, out, out)

			if rep, err := c.CompactOnce(context.Background()); err != nil || len(rep.Compacted) != 0 {
				t.Fatalf("third scan: %+v, %v", rep, err)
			}
			check("next scan", 1, out, out)
		})
	}
}
