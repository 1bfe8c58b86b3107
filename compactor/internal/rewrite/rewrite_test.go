package rewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/file"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/clickstream/clickstream/compactor/internal/lakefixture"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

var hour = time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)

type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }

func openOS(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return osFile{f, st.Size()}, nil
}

func inputsOf(names []string) []Input {
	var in []Input
	for _, n := range names {
		in = append(in, Input{Name: filepath.Base(n), Open: func() (File, error) { return openOS(n) }})
	}
	return in
}

// partition writes files lake files of event type typ into dir. File f holds events
// f*perFile .. (f+1)*perFile-1 and, as re-deliveries with other system columns, the first dups
// events of the file before it. It returns the file names and the number of distinct events.
func partition(t testing.TB, dir, typ string, files, perFile, dups int) ([]string, int) {
	t.Helper()
	et, ok := registry.Default().Lookup(typ)
	if !ok {
		t.Fatalf("no event type %s", typ)
	}
	sch := lakefixture.Schema(et.Message)
	var names []string
	offset := int64(0)
	for f := range files {
		var rows []map[string]any
		add := func(i int) {
			at := hour.Add(time.Duration(i%3600) * time.Second).Add(time.Duration(i) * time.Microsecond)
			rows = append(rows, lakefixture.Row(samples.Event(typ, i, at), lakefixture.System{
				ReceivedAt: at.Add(time.Duration(f) * time.Millisecond), ReqGUID: fmt.Sprintf("req-%d", i/10),
				EventIndex: int32(i % 10), ConnGroup: "g", KafkaPartition: int32(f % 3), KafkaOffset: offset,
			}))
			offset++
		}
		for j := range perFile {
			add(f*perFile + j)
		}
		if f > 0 {
			for j := range dups {
				add((f-1)*perFile + j)
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("clickstream-%s-valid+%d+%020d.parquet", typ, f%3, offset))
		var buf bytes.Buffer
		if err := lakefixture.Write(&buf, sch, rows, int64(len(rows)/2+1)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names, files * perFile
}

// jsonRows reads every row of a Parquet file as one JSON object per row.
func jsonRows(t testing.TB, name string) []map[string]any {
	t.Helper()
	f, err := openOS(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := lakefixture.ReadRows(f, f.Size())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// expected is what compaction must produce from files: the first row of each event id, sorted
// by user_id, event_time, event_id.
func expected(t testing.TB, files []string) []map[string]any {
	var rows []map[string]any
	for _, f := range files {
		rows = append(rows, jsonRows(t, f)...)
	}
	return lakefixture.Distinct(rows)
}

func parquetSchema(t testing.TB, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	pqschema.PrintSchema(pr.MetaData().Schema.Root(), &b, 2)
	return strings.ReplaceAll(b.String(), "force_set_converted_type=true", "force_set_converted_type=false")
}

func fileMetadata(t testing.TB, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		t.Fatal(err)
	}
	kv := pr.MetaData().KeyValueMetadata()
	out := map[string]string{}
	for i, k := range kv.Keys() {
		out[k] = kv.Values()[i]
	}
	return out
}

func testOptions() Options {
	return Options{
		Metadata:        map[string]string{"test.option": "kept"},
		SortKeys:        []string{"user_id", "event_time"},
		SortFallback:    []string{"_received_at"},
		IDColumn:        "event_id",
		DedupFallback:   []string{"_req_guid", "_event_index"},
		TargetFileBytes: 512 << 20,
		RowGroupBytes:   128 << 20,
		SortBufferBytes: 256 << 20,
		BatchRows:       1000,
	}
}

func rewriteTo(t testing.TB, dir string, inputs []Input, opt Options) (Result, []string) {
	t.Helper()
	var outs []string
	create := func(i int) (io.WriteCloser, error) {
		name := filepath.Join(dir, fmt.Sprintf("part-%05d.parquet", i))
		outs = append(outs, name)
		return os.Create(name)
	}
	res, err := Rewrite(context.Background(), inputs, create, opt)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	return res, outs
}

func TestRewriteDedupsSortsAndKeepsTheSchema(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"page_view", "purchase", "app_open", "click"} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			in, out := t.TempDir(), t.TempDir()
			files, distinct := partition(t, in, typ, 8, 60, 15)
			want := expected(t, files)
			if len(want) != distinct {
				t.Fatalf("fixture: %d distinct rows, want %d", len(want), distinct)
			}
			res, outs := rewriteTo(t, out, inputsOf(files), testOptions())
			if res.RowsIn != int64(distinct+7*15) || res.RowsOut != int64(distinct) || res.Duplicates != 7*15 {
				t.Fatalf("rows in %d out %d duplicates %d", res.RowsIn, res.RowsOut, res.Duplicates)
			}
			if len(outs) != 1 || res.Runs != 1 {
				t.Fatalf("%d files, %d runs; want 1 and 1", len(outs), res.Runs)
			}
			var got []map[string]any
			for _, o := range outs {
				got = append(got, jsonRows(t, o)...)
			}
			diffRows(t, want, got)
			if md := fileMetadata(t, outs[0]); md["clickstream.message"] == "" || md["clickstream.rows"] != "" || md["test.option"] != "kept" {
				t.Errorf("metadata %v: want the inputs' shared entries and the options' ones", md)
			}
			if a, b := parquetSchema(t, files[0]), parquetSchema(t, outs[0]); a != b {
				t.Fatalf("schema changed:\n%s\n---- became ----\n%s", a, b)
			}
		})
	}
}

func diffRows(t testing.TB, want, got []map[string]any) {
	t.Helper()
	if d := lakefixture.Diff(want, got); d != "" {
		t.Fatal(d)
	}
}

func TestRewriteSpillsAndMergesToTheSameResult(t *testing.T) {
	t.Parallel()
	in := t.TempDir()
	files, _ := partition(t, in, "purchase", 8, 150, 30)
	want := expected(t, files)

	opt := testOptions()
	opt.TargetFileBytes = 32 << 10
	opt.RowGroupBytes = 8 << 10
	one, outsOne := rewriteTo(t, t.TempDir(), inputsOf(files), opt)

	opt.SortBufferBytes = 100 << 10 // a few batches per run
	opt.SpillDir = t.TempDir()
	many, outsMany := rewriteTo(t, t.TempDir(), inputsOf(files), opt)
	if many.Runs < 3 {
		t.Fatalf("%d runs, want a spill into several", many.Runs)
	}
	if len(outsOne) < 2 || len(outsOne) != len(outsMany) {
		t.Fatalf("%d and %d files, want the same number above 1", len(outsOne), len(outsMany))
	}
	for _, outs := range [][]string{outsOne, outsMany} {
		var got []map[string]any
		for _, o := range outs {
			got = append(got, jsonRows(t, o)...)
		}
		diffRows(t, want, got)
	}
	for i := range outsOne {
		a, _ := os.ReadFile(outsOne[i])
		b, _ := os.ReadFile(outsMany[i])
		if !bytes.Equal(a, b) {
			t.Errorf("file %d differs between one run and a merge of %d runs", i, many.Runs)
		}
	}
	if one.Files[0].RowGroups < 2 {
		t.Errorf("want several row groups of 8 KiB, got %+v", one.Files)
	}
	left, _ := os.ReadDir(opt.SpillDir)
	if len(left) != 0 {
		t.Errorf("spill files left behind: %v", left)
	}

	// More runs than one merge reads at once: they are merged in two levels.
	opt.BatchRows, opt.SortBufferBytes = 8, 1
	deep, outsDeep := rewriteTo(t, t.TempDir(), inputsOf(files), opt)
	if deep.Runs <= maxFanIn {
		t.Fatalf("%d runs, want more than %d", deep.Runs, maxFanIn)
	}
	var got []map[string]any
	for _, o := range outsDeep {
		got = append(got, jsonRows(t, o)...)
	}
	diffRows(t, want, got)
}

func TestRewriteMergesAnOlderSchema(t *testing.T) {
	t.Parallel()
	in := t.TempDir()
	files, _ := partition(t, in, "purchase", 4, 50, 10)
	// Two more files written before the message had its coupon and card fields.
	et, _ := registry.Default().Lookup("purchase")
	old := lakefixture.Schema(et.Message, "coupon", "card")
	for f := range 2 {
		var rows []map[string]any
		for i := range 40 {
			n := 1000 + f*40 + i
			rows = append(rows, lakefixture.Row(samples.Event("purchase", n, hour.Add(time.Duration(n)*time.Millisecond)), lakefixture.System{ReceivedAt: hour, ReqGUID: "old"}))
		}
		var buf bytes.Buffer
		if err := lakefixture.Write(&buf, old, rows, 100); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(in, fmt.Sprintf("old-%d.parquet", f))
		if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append([]string{name}, files...) // the older files come first
	}
	var all []map[string]any
	for _, f := range files {
		for _, r := range jsonRows(t, f) {
			if _, ok := r["coupon"]; !ok {
				r["coupon"], r["card"] = nil, nil
			}
			all = append(all, r)
		}
	}
	want := lakefixture.Distinct(all)
	_, outs := rewriteTo(t, t.TempDir(), inputsOf(files), testOptions())
	var got []map[string]any
	for _, o := range outs {
		got = append(got, jsonRows(t, o)...)
	}
	diffRows(t, want, got)
	if a, b := parquetSchema(t, files[len(files)-1]), parquetSchema(t, outs[0]); a != b {
		t.Fatalf("want the newest schema:\n%s\n---- got ----\n%s", a, b)
	}
}

func TestRewriteRefusesAChangedColumnType(t *testing.T) {
	t.Parallel()
	_, err := unify([]*arrow.Schema{
		arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.BinaryTypes.String}}, nil),
		arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil),
	}, 1)
	if !errors.Is(err, ErrSchema) {
		t.Fatalf("unify = %v, want ErrSchema", err)
	}
}

func TestRewriteDedupsByRequestWithoutAnID(t *testing.T) {
	t.Parallel()
	in := t.TempDir()
	files, _ := partition(t, in, "click", 4, 100, 30)
	opt := testOptions()
	opt.IDColumn = ""
	opt.SortKeys = []string{"no_such_column"}
	res, outs := rewriteTo(t, t.TempDir(), inputsOf(files), opt)
	if res.Duplicates != 3*30 || !slices.Equal(res.DedupKeys, []string{"_req_guid", "_event_index"}) || !slices.Equal(res.SortKeys, []string{"_received_at"}) {
		t.Fatalf("result %+v", res)
	}
	rows := jsonRows(t, outs[0])
	if !slices.IsSortedFunc(rows, func(a, b map[string]any) int {
		return strings.Compare(a["_received_at"].(string), b["_received_at"].(string))
	}) {
		t.Fatal("not sorted by _received_at")
	}
}
