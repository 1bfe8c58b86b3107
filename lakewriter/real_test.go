package lakewriter

import (
	"context"
	"os"
	"path"
	"strconv"
	"testing"
	"time"

	"github.com/clickstream/clickstream/services/lake"
)

// With LAKEWRITER_TEST_HDFS set, TestCrashAndReplay also runs on HDFS (see testLake).

// TestRealLake runs the lakewriter against a real HDFS and Hive Metastore when they are given
// (make stack-up starts them on 127.0.0.1):
//
//	LAKEWRITER_TEST_HDFS=hdfs://127.0.0.1:8020/warehouse LAKEWRITER_TEST_HDFS_USER=root \
//	LAKEWRITER_TEST_METASTORE=thrift://127.0.0.1:9083 go test -run RealLake ./lakewriter/
//
// It lands every event type and the dead letters in a fresh database, reads every file back
// from HDFS and checks the tables and partitions in the metastore.
func TestRealLake(t *testing.T) {
	url := os.Getenv("LAKEWRITER_TEST_HDFS")
	if url == "" {
		t.Skip("LAKEWRITER_TEST_HDFS not set")
	}
	c := startKafka(t)
	p := newProducer(t, c)
	p.send(base, 2*time.Minute, 12, true)
	cfg := testConfig(c, url)
	cfg.Lake.HDFSUser = os.Getenv("LAKEWRITER_TEST_HDFS_USER")
	cfg.Lake.MetastoreURI = os.Getenv("LAKEWRITER_TEST_METASTORE")
	cfg.Lake.Database = "lakewriter_test_" + strconv.FormatInt(time.Now().Unix(), 36)
	cfg.RegisterRetryMax = time.Second
	in := start(t, cfg, nil)
	waitFor(t, "all records consumed", func() bool { return in.caughtUp(p.want) })
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	lk, err := lake.Open(context.Background(), cfg.Lake, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	defer lk.FS.RemoveAll(lk.Layout.DatabaseDir())
	files := checkLakeFS(t, lk.FS, lk.Layout.Root, cfg.Lake.Database, p.want)
	if len(files) == 0 {
		t.Fatal("no files")
	}
	if lk.Metastore == nil {
		return
	}
	ctx := context.Background()
	for _, f := range files {
		dir := path.Dir(f) // <db>.db/<table>/dt=/hour=
		table := path.Base(path.Dir(path.Dir(dir)))
		part, err := lake.ParsePartition(path.Base(path.Dir(dir)) + "/" + path.Base(dir))
		if err != nil {
			t.Fatal(err)
		}
		info, err := lk.Metastore.GetPartition(ctx, cfg.Lake.Database, table, part.Values())
		if err != nil {
			t.Errorf("%s: partition not registered: %v", f, err)
			continue
		}
		if want := lk.FS.Location(lk.Layout.PartitionDir(table, part)); info.Location != want {
			t.Errorf("%s: partition location %s, want %s", f, info.Location, want)
		}
	}
	tbl, err := lk.Metastore.GetTable(ctx, cfg.Lake.Database, "purchase")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("purchase: %d columns at %s", len(tbl.Columns), tbl.Location)
}

// TestRealFreshness measures record → visible on the real lake with a 5 s rotation interval:
// events stamped now are produced for 20 s, and the visible-latency and commit-time histograms
// are logged. Gated like TestRealLake.
func TestRealFreshness(t *testing.T) {
	url := os.Getenv("LAKEWRITER_TEST_HDFS")
	if url == "" {
		t.Skip("LAKEWRITER_TEST_HDFS not set")
	}
	c := startKafka(t)
	p := newProducer(t, c)
	cfg := testConfig(c, url)
	cfg.Lake.HDFSUser = os.Getenv("LAKEWRITER_TEST_HDFS_USER")
	cfg.Lake.MetastoreURI = os.Getenv("LAKEWRITER_TEST_METASTORE")
	cfg.Lake.Database = "lakewriter_fresh_" + strconv.FormatInt(time.Now().Unix(), 36)
	cfg.RotateInterval = 5 * time.Second
	in := start(t, cfg, nil)
	for range 20 {
		p.send(time.Now(), time.Microsecond, 1, false)
		time.Sleep(time.Second)
	}
	waitFor(t, "all records consumed", func() bool { return in.caughtUp(p.want) })
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := mf.GetName(); n != "clickstream_lakewriter_visible_latency_seconds" && n != "clickstream_lakewriter_commit_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		var b []string
		for _, bk := range h.GetBucket() {
			b = append(b, strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64)+":"+strconv.FormatUint(bk.GetCumulativeCount(), 10))
		}
		t.Logf("%s: count %d, mean %.3fs, cumulative buckets %v", mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(h.GetSampleCount()), b)
	}
	lk, err := lake.Open(context.Background(), cfg.Lake, "test", nil)
	if err == nil {
		_ = lk.FS.RemoveAll(lk.Layout.DatabaseDir())
		lk.Close()
	}
}
