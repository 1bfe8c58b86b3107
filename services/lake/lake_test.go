package lake

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in                      string
		scheme, host, dir, fail string
	}{
		{in: "hdfs://127.0.0.1:8020/warehouse", scheme: "hdfs", host: "127.0.0.1:8020", dir: "/warehouse"},
		{in: "hdfs://nn/warehouse/", scheme: "hdfs", host: "nn:8020", dir: "/warehouse"},
		{in: "hdfs://nn:9000", scheme: "hdfs", host: "nn:9000", dir: "/"},
		{in: "file:///var/lib/lake", scheme: "file", dir: "/var/lib/lake"},
		{in: "/var/lib/lake/", scheme: "file", dir: "/var/lib/lake"},
		{in: "s3://bucket/x", fail: "scheme must be file or hdfs"},
		{in: "hdfs:///warehouse", fail: "hdfs needs host:port"},
		{in: "file://host/x", fail: "a file URL has no host"},
		{in: "", fail: "empty"},
	}
	for _, tt := range tests {
		scheme, host, dir, err := ParseURL(tt.in)
		if tt.fail != "" {
			if err == nil || !contains(err.Error(), tt.fail) {
				t.Errorf("ParseURL(%q) error = %v, want %q", tt.in, err, tt.fail)
			}
			continue
		}
		if err != nil || scheme != tt.scheme || host != tt.host || dir != tt.dir {
			t.Errorf("ParseURL(%q) = %q %q %q %v, want %q %q %q", tt.in, scheme, host, dir, err, tt.scheme, tt.host, tt.dir)
		}
	}
	// Relative paths become absolute.
	for _, rel := range []string{"./lake", "lake", "file://./lake"} {
		_, _, dir, err := ParseURL(rel)
		if err != nil || !path.IsAbs(dir) || path.Base(dir) != "lake" {
			t.Errorf("ParseURL(%q) = %q, %v; want an absolute path ending in lake", rel, dir, err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestLayout(t *testing.T) {
	t.Parallel()
	l := Layout{Root: "/warehouse", Database: "clickstream"}
	p := PartitionOf(time.Date(2026, 11, 22, 13, 59, 59, 0, time.FixedZone("CET", 3600)))
	if got, want := l.PartitionDir("page_view", p), "/warehouse/clickstream.db/page_view/dt=2026-11-22/hour=12"; got != want {
		t.Errorf("PartitionDir = %q, want %q", got, want)
	}
	if !slices.Equal(p.Values(), []string{"2026-11-22", "12"}) {
		t.Errorf("Values = %q", p.Values())
	}
	if got := p.Start(); !got.Equal(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)) || !p.End().Equal(got.Add(time.Hour)) {
		t.Errorf("Start/End = %v %v", got, p.End())
	}
	back, err := ParsePartition(p.Path())
	if err != nil || back != p {
		t.Errorf("ParsePartition(%q) = %v, %v", p.Path(), back, err)
	}
	for _, bad := range []string{"dt=2026-11-22", "dt=2026-13-01/hour=01", "dt=2026-11-22/hour=1", "hour=01/dt=2026-11-22"} {
		if _, err := ParsePartition(bad); err == nil {
			t.Errorf("ParsePartition(%q) accepted", bad)
		}
	}
	for _, dir := range []string{l.StagingDir("clickstream-click-valid", 3), l.CommitLogDir("clickstream-click-valid", 3)} {
		if path.Dir(path.Dir(dir)) != l.DatabaseDir() || !Hidden(path.Base(path.Dir(dir))) {
			t.Errorf("%s is not a hidden directory of the database dir", dir)
		}
	}
}

func TestDataFileNames(t *testing.T) {
	t.Parallel()
	files := []DataFile{
		{Topic: "clickstream-page_view-valid", Partition: 2, FirstOffset: 1000, LastOffset: 1999},
		{Topic: "clickstream-page_view-valid", Partition: 2, FirstOffset: 9, LastOffset: 999},
		{Topic: "clickstream-page_view-valid", Partition: 10, FirstOffset: 0, LastOffset: 5},
		{Topic: "clickstream-dlq", Partition: 0, FirstOffset: 123456789012, LastOffset: 123456789012},
	}
	var names []string
	for _, f := range files {
		n := f.Name()
		back, ok := ParseDataFile("/some/dir/" + n)
		if !ok || back != f {
			t.Errorf("ParseDataFile(%q) = %+v, %v; want %+v", n, back, ok, f)
		}
		names = append(names, n)
	}
	if got := files[0].Name(); got != "clickstream-page_view-valid+00002+00000000000000001000+00000000000000001999.parquet" {
		t.Errorf("Name = %q", got)
	}
	sorted := slices.Clone(names)
	sort.Strings(sorted)
	want := []string{names[3], names[1], names[0], names[2]}
	if !slices.Equal(sorted, want) {
		t.Errorf("names do not sort by topic, partition, offset:\n%q", sorted)
	}
	for _, bad := range []string{"_tmp.parquet", ".x+1+2+3.parquet", "a+1+2.parquet", "a+1+5+2.parquet", "a+b+1+2.parquet", "a+1+2+3.json", "part-0001.parquet"} {
		if f, ok := ParseDataFile(bad); ok {
			t.Errorf("ParseDataFile(%q) = %+v, want not ok", bad, f)
		}
	}
}

func TestLocalFS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fsys, root, err := OpenFS("file://"+dir, FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testFS(t, fsys, root)
	if got := fsys.Location("/a/b"); got != "file:/a/b" {
		t.Errorf("Location = %q", got)
	}
}

// testFS checks the FS contract; the HDFS test runs it against a real NameNode.
func testFS(t *testing.T, fsys FS, root string) {
	t.Helper()
	d := path.Join(root, "x", "y")
	if err := fsys.MkdirAll(d); err != nil {
		t.Fatal(err)
	}
	if err := fsys.MkdirAll(d); err != nil {
		t.Fatalf("MkdirAll of an existing dir: %v", err)
	}
	write := func(name, content string) error {
		w, err := fsys.Create(name)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, content); err != nil {
			return err
		}
		return w.Close()
	}
	a, b := path.Join(d, "a"), path.Join(d, "b")
	if err := write(a, "hello"); err != nil {
		t.Fatal(err)
	}
	if err := write(a, "again"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create of an existing file: %v, want ErrExist", err)
	}
	if err := write(b, "other"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Rename(a, b); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Rename onto an existing file: %v, want ErrExist", err)
	}
	c := path.Join(d, "c")
	if err := fsys.Rename(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of the old name: %v, want ErrNotExist", err)
	}
	f, err := fsys.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if n, err := f.ReadAt(buf, 2); err != nil || n != 3 || string(buf) != "llo" || f.Size() != 5 {
		t.Fatalf("ReadAt = %d %q %v, size %d", n, buf, err, f.Size())
	}
	_ = f.Close()
	infos, err := fsys.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name())
	}
	if !slices.Equal(names, []string{"b", "c"}) {
		t.Fatalf("ReadDir = %q", names)
	}
	if _, err := fsys.ReadDir(path.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadDir of a missing dir: %v", err)
	}
	if err := fsys.Remove(b); err != nil {
		t.Fatal(err)
	}
	if err := fsys.RemoveAll(path.Join(root, "x")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.RemoveAll(path.Join(root, "x")); err != nil {
		t.Fatalf("RemoveAll of a missing dir: %v", err)
	}
}

func TestMergeColumns(t *testing.T) {
	t.Parallel()
	have := []Column{{Name: "a", Type: "string"}, {Name: "s", Type: "struct<x:int,y:array<struct<p:string>>>"}, {Name: "gone", Type: "int"}}
	want := []Column{{Name: "a", Type: "STRING"}, {Name: "s", Type: "struct<x:int,y:array<struct<p:string,q:bigint>>,z:map<string,string>>"}, {Name: "b", Type: "decimal(20,0)"}}
	merged, conflicts := MergeColumns(have, want)
	if len(conflicts) != 0 {
		t.Fatalf("conflicts: %q", conflicts)
	}
	wantMerged := []Column{have[0], want[1], have[2], want[2]}
	if !slices.Equal(merged, wantMerged) {
		t.Fatalf("merged = %+v\nwant %+v", merged, wantMerged)
	}
	for _, bad := range []Column{{Name: "a", Type: "int"}, {Name: "s", Type: "struct<y:int>"}, {Name: "s", Type: "struct<x:bigint,y:array<struct<p:string>>>"}} {
		if _, c := MergeColumns(have, []Column{bad}); len(c) != 1 {
			t.Errorf("MergeColumns with %+v: conflicts %q, want one", bad, c)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.URL, c.Database, c.MetastoreURI, c.MetastoreRetries = "s3://x", "Click-Stream", "http://x", -1
	err := c.Validate()
	if err == nil {
		t.Fatal("bad config validated")
	}
	for _, want := range []string{"url:", "database:", "metastore_uri:", "metastore_retries:"} {
		if !contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func TestOpenLocalLake(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.URL = t.TempDir()
	l, err := Open(context.Background(), c, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Metastore != nil {
		t.Error("metastore without a URI")
	}
	if st, err := l.FS.Stat(l.Layout.DatabaseDir()); err != nil || !st.IsDir() {
		t.Errorf("database dir not created: %v", err)
	}
}
