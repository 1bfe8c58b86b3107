package lakewriter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/lake/laketest"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
)

const testPartitions = 2

// produced is what the test put on Kafka: the row each record must become, by topic-partition
// and offset.
type produced struct {
	rows map[tp]map[int64]map[string]any
	next map[tp]int64 // last data offset + 1
	// versions are the schema versions files may carry (clickstream.schema_version), by number;
	// nil: only version 0, the built-in examples.
	versions map[uint32]*registry.Registry
}

// tables returns the table schemas of a schema version files may carry.
func (p *produced) tables(t *testing.T, version uint32) map[string]*Schema {
	t.Helper()
	reg := registry.Default()
	if version != 0 || p.versions != nil {
		reg = p.versions[version]
	}
	if reg == nil {
		t.Fatalf("a file carries schema version %d, which the test never published", version)
	}
	schemas, err := TableSchemas(reg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Schema{}
	for _, s := range schemas {
		out[s.Table] = s
	}
	return out
}

func (p *produced) count() int {
	n := 0
	for _, m := range p.rows {
		n += len(m)
	}
	return n
}

func allTopics() []string {
	var ts []string
	for _, t := range samples.Types {
		ts = append(ts, kafka.ValidTopic(t))
	}
	return append(ts, kafka.DefaultDLQTopic)
}

func startKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, allTopics()...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// producer writes records the way the validator does: transactionally, with the contract's
// key, headers and timestamp.
type producer struct {
	t    *testing.T
	cl   *kgo.Client
	want *produced
	seq  int
}

func newProducer(t *testing.T, c *kfake.Cluster) *producer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("test-validator"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{t: t, cl: cl, want: &produced{rows: map[tp]map[int64]map[string]any{}, next: map[tp]int64{}}}
}

func headers(i int, at time.Time, eventType, schema string) []kgo.RecordHeader {
	h := []kgo.RecordHeader{
		{Key: kafka.HeaderReqGUID, Value: []byte(fmt.Sprintf("req-%04d", i/3))},
		{Key: kafka.HeaderEventIndex, Value: []byte(strconv.Itoa(i % 3))},
		{Key: kafka.HeaderConnID, Value: []byte(fmt.Sprintf("conn-%d", i%4))},
		{Key: kafka.HeaderConnGroup, Value: []byte("group-" + strconv.Itoa(i%2))},
		{Key: kafka.HeaderSentTime, Value: []byte(at.Add(-time.Second).Format(time.RFC3339Nano))},
		{Key: kafka.HeaderReceivedAt, Value: []byte(at.Format(time.RFC3339Nano))},
		{Key: kafka.HeaderEventType, Value: []byte(eventType)},
	}
	if schema != "" {
		h = append(h, kgo.RecordHeader{Key: kafka.HeaderSchema, Value: []byte(schema)})
	}
	switch i % 5 {
	case 0:
		h = append(h, kgo.RecordHeader{Key: kafka.HeaderReplayedFromDLQ, Value: []byte("true")})
	case 1:
		h = append(h, kgo.RecordHeader{Key: kafka.HeaderReplayedFromDLQ, Value: []byte("false")})
	}
	return h
}

// send produces n events of every type and every invalid example to the DLQ, with timestamps
// from base every step, in one committed transaction; abortToo adds an aborted transaction whose
// records must never land.
func (p *producer) send(base time.Time, step time.Duration, n int, abortToo bool) {
	p.t.Helper()
	ctx := context.Background()
	var recs []*kgo.Record
	var msgs []proto.Message
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		for range n {
			i := p.seq
			p.seq++
			at := base.Add(time.Duration(i) * step)
			m := samples.Event(typ, i, at)
			recs = append(recs, &kgo.Record{Topic: kafka.ValidTopic(typ), Partition: int32(i % testPartitions),
				Key: []byte(fmt.Sprintf("conn-%d", i%4)), Value: samples.Marshal(m), Timestamp: at,
				Headers: headers(i, at, typ, string(et.Message.FullName()))})
			msgs = append(msgs, m)
		}
	}
	for _, inv := range samples.Invalids(base) {
		i := p.seq
		p.seq++
		at := base.Add(time.Duration(i) * step)
		dl := &clickstreamv1.DeadLetter{Kind: inv.Kind, EventType: inv.Type, EventBytes: inv.Bytes,
			SourceTopic: "clickstream-" + inv.Type + "-log", SourcePartition: int32(i % 3), SourceOffset: int64(i),
			ReceivedAt: timestamppb.New(at), FailedAt: timestamppb.New(at.Add(5 * time.Millisecond)),
			Error: inv.Name, ValidatorVersion: "test"}
		for _, r := range inv.RuleIDs {
			dl.Violations = append(dl.Violations, &clickstreamv1.Violation{FieldPath: "x", RuleId: r, Message: "broken " + r})
		}
		recs = append(recs, &kgo.Record{Topic: kafka.DefaultDLQTopic, Partition: int32(i % testPartitions),
			Key: []byte("conn"), Value: samples.Marshal(dl), Timestamp: at, Headers: headers(i, at, inv.Type, "")})
		msgs = append(msgs, dl)
	}
	p.produce(recs, msgs)
	if abortToo {
		if err := p.cl.BeginTransaction(); err != nil {
			p.t.Fatal(err)
		}
		for _, r := range recs[:3] {
			c := *r
			c.Headers = append(c.Headers, kgo.RecordHeader{Key: "aborted", Value: []byte("1")})
			if err := p.cl.ProduceSync(ctx, &c).FirstErr(); err != nil {
				p.t.Fatal(err)
			}
		}
		if err := p.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
			p.t.Fatal(err)
		}
	}
}

// produce writes recs in one committed transaction; msgs[i] is the message recs[i] holds, whose
// row the lake must have (with the record's system columns).
func (p *producer) produce(recs []*kgo.Record, msgs []proto.Message) []*kgo.Record {
	p.t.Helper()
	ctx := context.Background()
	if err := p.cl.BeginTransaction(); err != nil {
		p.t.Fatal(err)
	}
	results := p.cl.ProduceSync(ctx, recs...)
	if err := results.FirstErr(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		p.t.Fatal(err)
	}
	msgOf := map[*kgo.Record]proto.Message{}
	for i, r := range recs {
		msgOf[r] = msgs[i]
	}
	for _, r := range results {
		rec := r.Record
		k := tp{rec.Topic, rec.Partition}
		if p.want.rows[k] == nil {
			p.want.rows[k] = map[int64]map[string]any{}
		}
		row := expectRow(msgOf[rec])
		sys := sysFromRecord(rec)
		row[ColReceivedAt] = sys.receivedAt.UTC().Truncate(time.Microsecond)
		row[ColReqGUID], row[ColConnGroup] = sys.reqGUID, sys.connGroup
		row[ColEventIndex] = int64(sys.eventIndex)
		row[ColKafkaPartition], row[ColKafkaOffset] = int64(rec.Partition), rec.Offset
		if rec.Topic != kafka.DefaultDLQTopic {
			row[ColReplayedFromDLQ] = sys.replayed
		}
		p.want.rows[k][rec.Offset] = row
		p.want.next[k] = max(p.want.next[k], rec.Offset+1)
	}
	return recs
}

type instance struct {
	lw     *Lakewriter
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func testConfig(c *kfake.Cluster, dir string) Config {
	cfg := DefaultConfig()
	cfg.Telemetry.AdminAddr = ""
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Lake.URL = dir
	cfg.RotateInterval = time.Hour
	cfg.ShutdownTimeout = 10 * time.Second
	return cfg
}

// start runs a lakewriter that follows the schema topic itself (an empty one: the built-in
// example schemas).
func start(t *testing.T, cfg Config, prepare func(*Lakewriter)) *instance {
	t.Helper()
	return startLive(t, cfg, nil, prepare)
}

// startLive runs a lakewriter with the schema versions of live (nil: it follows the topic).
func startLive(t *testing.T, cfg Config, live *schemastore.Live, prepare func(*Lakewriter)) *instance {
	t.Helper()
	reg := prometheus.NewRegistry()
	lw, err := New(cfg, run.Deps{Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})), Reg: reg, Schemas: live})
	if err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(lw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{lw: lw, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- lw.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop shuts the instance down gracefully and returns Run's error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	select {
	case err, ok := <-in.done:
		if ok {
			close(in.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("lakewriter did not stop")
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitFor polls cond until it holds; it fails the test after a generous bound (the condition
// is expected to hold within milliseconds; the bound only stops a hung test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// caughtUp reports whether the lakewriter has consumed every produced record.
func (in *instance) caughtUp(want *produced) bool {
	in.lw.mu.Lock()
	defer in.lw.mu.Unlock()
	for k, next := range want.next {
		w := in.lw.tps[k]
		if w == nil || w.next < next {
			return false
		}
	}
	return true
}

// lakeFiles lists every file under dir (a local directory), relative, sorted.
func lakeFiles(t *testing.T, dir string) []string {
	t.Helper()
	return fsFiles(t, lake.Local{}, filepath.ToSlash(dir))
}

// fsFiles lists every file under root in fsys, relative, sorted.
func fsFiles(t *testing.T, fsys lake.FS, root string) []string {
	t.Helper()
	var out []string
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		infos, err := fsys.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range infos {
			if fi.IsDir() {
				walk(path.Join(dir, fi.Name()), path.Join(rel, fi.Name()))
			} else {
				out = append(out, path.Join(rel, fi.Name()))
			}
		}
	}
	walk(root, "")
	sort.Strings(out)
	return out
}

// checkLake reads every committed file and compares the rows with what was produced: every
// record exactly once, every column value equal. It also checks that nothing else is visible:
// no staging files, no hidden files in tables, one commit marker per topic-partition at most.
// It returns the committed data files.
func checkLake(t *testing.T, dir string, want *produced) []string {
	t.Helper()
	return checkLakeFS(t, lake.Local{}, filepath.ToSlash(dir), lake.DefaultDatabase, want)
}

func checkLakeFS(t *testing.T, fsys lake.FS, dir, db string, want *produced) []string {
	t.Helper()
	byTable := want.tables(t, 0)
	seen := map[tp]map[int64]bool{}
	var dataFiles []string
	markers := map[string]int{}
	for _, rel := range fsFiles(t, fsys, path.Join(dir, db+".db")) {
		rel = db + ".db/" + rel
		parts := strings.Split(rel, "/")
		if parts[0] != db+".db" {
			t.Errorf("file outside the database dir: %s", rel)
			continue
		}
		switch {
		case parts[1] == "_staging":
			t.Errorf("orphan staging file: %s", rel)
			continue
		case parts[1] == "_commits":
			markers[parts[2]]++
			continue
		}
		for _, p := range parts[1:] {
			if lake.Hidden(p) {
				t.Errorf("hidden file in a table: %s", rel)
			}
		}
		df, ok := lake.ParseDataFile(rel)
		if len(parts) != 5 || !ok {
			t.Errorf("unexpected file: %s", rel)
			continue
		}
		part, err := lake.ParsePartition(parts[2] + "/" + parts[3])
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		dataFiles = append(dataFiles, rel)
		f, err := fsys.Open(path.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		rows, file := readParquet(t, f, f.Size())
		f.Close()
		version, _ := file.Lookup(MetaSchemaVersion)
		if v, err := strconv.ParseUint(version, 10, 32); err != nil {
			t.Errorf("%s: schema version metadata %q", rel, version)
		} else {
			byTable = want.tables(t, uint32(v))
		}
		s := byTable[parts[1]]
		if s == nil {
			t.Errorf("%s: no table %s in schema version %s", rel, parts[1], version)
			continue
		}
		if id, ok := file.Lookup(MetaIDField); id != s.IDField || ok != (s.IDField != "") {
			t.Errorf("%s: id field metadata %q (%v), want %q", rel, id, ok, s.IDField)
		}
		if got := file.Schema().String(); got != s.Parquet.String() {
			t.Errorf("%s: schema differs from the table's:\n%s", rel, got)
		}
		meta := map[string]string{MetaTopic: df.Topic, MetaPartition: strconv.Itoa(int(df.Partition)),
			MetaFirstOffset: strconv.FormatInt(df.FirstOffset, 10), MetaLastOffset: strconv.FormatInt(df.LastOffset, 10),
			MetaMessage: string(s.Message.FullName())}
		for k, v := range meta {
			if got, _ := file.Lookup(k); got != v {
				t.Errorf("%s: metadata %s = %q, want %q", rel, k, got, v)
			}
		}
		if w, _ := file.Lookup(MetaWriter); !strings.HasPrefix(w, "lakewriter ") {
			t.Errorf("%s: writer metadata %q", rel, w)
		}
		k := tp{df.Topic, df.Partition}
		if seen[k] == nil {
			seen[k] = map[int64]bool{}
		}
		for _, row := range rows {
			off := row[ColKafkaOffset].(int64)
			if off < df.FirstOffset || off > df.LastOffset {
				t.Errorf("%s: offset %d outside the file's range", rel, off)
			}
			if seen[k][off] {
				t.Errorf("%s: offset %d of %v appears twice", rel, off, k)
			}
			seen[k][off] = true
			exp, ok := want.rows[k][off]
			if !ok {
				t.Errorf("%s: offset %d was never produced (an aborted transaction?)", rel, off)
				continue
			}
			if ts := row[ColReceivedAt].(time.Time); lake.PartitionOf(ts) != part {
				t.Errorf("%s: row received at %v is in the wrong partition", rel, ts)
			}
			diffRows(t, fmt.Sprintf("%s offset %d", rel, off), exp, row)
		}
	}
	for k, offs := range want.rows {
		for off := range offs {
			if !seen[k][off] {
				t.Errorf("%v offset %d is missing from the lake", k, off)
			}
		}
	}
	for tp, n := range markers {
		if n > 1 {
			t.Errorf("%s: %d commit markers, want the latest only", tp, n)
		}
	}
	return dataFiles
}

// testLake is a fresh lake for one test: a temporary directory, or a fresh directory on the real
// HDFS of LAKEWRITER_TEST_HDFS when it is set (see real_test.go). It returns the lake URL, its
// file system and the warehouse directory in it.
func testLake(t *testing.T) (string, lake.FS, string) {
	t.Helper()
	url := os.Getenv("LAKEWRITER_TEST_HDFS")
	if url == "" {
		dir := t.TempDir()
		return dir, lake.Local{}, filepath.ToSlash(dir)
	}
	url = strings.TrimSuffix(url, "/") + "/" + strings.NewReplacer("/", "_", "=", "_").Replace(t.Name()) + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	fsys, root, err := lake.OpenFS(url, lake.FSOptions{HDFSUser: os.Getenv("LAKEWRITER_TEST_HDFS_USER")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fsys.RemoveAll(root); fsys.Close() })
	return url, fsys, root
}

var base = time.Date(2026, 11, 22, 13, 40, 0, 123456789, time.UTC)

// TestLandsEveryRecordExactlyOnce produces every event type and every dead letter, runs the
// lakewriter and reads the lake back.
func TestLandsEveryRecordExactlyOnce(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	p := newProducer(t, c)
	p.send(base, 2*time.Minute, 12, true) // spans 13:40 to past 15:00: three hours
	dir := t.TempDir()
	in := start(t, testConfig(c, dir), nil)
	waitFor(t, "all records consumed", func() bool { return in.caughtUp(p.want) })
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	files := checkLake(t, dir, p.want)
	golden(t, "lake_files.golden", strings.Join(files, "\n")+"\n")
	if got := counter(t, in.reg, "clickstream_lakewriter_rows_committed_total"); got != float64(p.want.count()) {
		t.Errorf("rows committed = %v, want %d", got, p.want.count())
	}
	if got := counter(t, in.reg, "clickstream_lakewriter_records_dropped_total"); got != 0 {
		t.Errorf("dropped = %v", got)
	}
}

// counter sums every series of a metric.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func labeled(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestCrashAndReplay kills the lakewriter at every point of the commit protocol and in the
// middle of files, restarts it (with the group's offsets and without them), and checks that the
// lake holds exactly the produced rows, once each, with nothing left over.
func TestCrashAndReplay(t *testing.T) {
	t.Parallel()
	points := []string{"mid-file", "before-marker", "rename-0", "rename-1", "after-commit"}
	for _, point := range points {
		for _, newGroup := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/new-group=%v", point, newGroup), func(t *testing.T) {
				t.Parallel()
				c := startKafka(t)
				p := newProducer(t, c)
				p.send(base, 2*time.Minute, 8, false)
				dir, fsys, root := testLake(t)
				cfg := testConfig(c, dir)
				if point != "mid-file" {
					cfg.FileSize = 1 // commit after every batch
				}

				var once sync.Once
				crash := func(lw *Lakewriter) {
					lw.testHook = func(at string) error {
						fire := false
						switch point {
						case "mid-file":
							fire = at == "after-batch" && lw.tps[tp{kafka.ValidTopic("purchase"), 0}] != nil && lw.tps[tp{kafka.ValidTopic("purchase"), 0}].pending
						case "after-commit":
							fire = at == "after-batch" && counterValue(lw.m.files, "purchase") > 0
						default:
							fire = at == point
						}
						if !fire {
							return nil
						}
						err := error(nil)
						once.Do(func() { err = errCrash })
						return err
					}
				}
				first := start(t, cfg, crash)
				waitFor(t, "the crash", func() bool {
					first.lw.mu.Lock()
					defer first.lw.mu.Unlock()
					return first.lw.crashed
				})
				if err := first.stop(t); !errors.Is(err, errCrash) {
					t.Fatalf("first run ended with %v, want the simulated crash", err)
				}
				p.send(base.Add(time.Hour), time.Minute, 3, true) // more while it was down
				if newGroup {
					cfg.GroupID = "another-group"
				}
				second := start(t, cfg, nil)
				waitFor(t, "all records consumed", func() bool { return second.caughtUp(p.want) })
				if err := second.stop(t); err != nil {
					t.Fatal(err)
				}
				checkLakeFS(t, fsys, root, lake.DefaultDatabase, p.want)
				replayed := counter(t, second.reg, "clickstream_lakewriter_renames_replayed_total")
				orphans := counter(t, second.reg, "clickstream_lakewriter_orphans_removed_total")
				switch point {
				case "rename-0", "rename-1":
					if replayed == 0 {
						t.Error("recovery finished no rename after a crash between marker and renames")
					}
				case "before-marker", "mid-file":
					if orphans == 0 {
						t.Error("recovery removed no staging file after a crash with files open")
					}
				}
			})
		}
	}
}

func counterValue(v *prometheus.CounterVec, label string) float64 {
	return testutil.ToFloat64(v.WithLabelValues(label))
}

// fakeClock is a manual clock: timers fire when Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	ft := &fakeTimer{at: c.now.Add(d), f: f}
	if d <= 0 {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	c.timers = append(c.timers, ft)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !ft.stopped
		ft.stopped = true
		return was
	}
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, ft := range c.timers {
		switch {
		case ft.stopped:
		case !ft.at.After(c.now):
			ft.stopped = true
			due = append(due, ft)
		default:
			keep = append(keep, ft)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, ft := range due {
		ft.f()
	}
}

// TestTimerRotation checks the wall-clock triggers without traffic: files are committed when the
// hour they hold has ended, and RotateInterval after their first record, with no record arriving
// to trigger it. The clock is a fake advanced by the test; nothing depends on real time.
func TestTimerRotation(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	p := newProducer(t, c)
	t0 := time.Date(2026, 11, 22, 13, 59, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	dir := t.TempDir()
	cfg := testConfig(c, dir)
	cfg.RotateInterval = 10 * time.Minute
	in := start(t, cfg, func(lw *Lakewriter) { lw.clock = clk })
	dataFiles := func() int {
		n := 0
		for _, f := range lakeFiles(t, dir) {
			if _, ok := lake.ParseDataFile(f); ok && !strings.Contains(f, "/_") {
				n++
			}
		}
		return n
	}

	p.send(t0, time.Millisecond, 2, false) // all in hour 13
	waitFor(t, "records written", func() bool { return in.caughtUp(p.want) })
	if n := dataFiles(); n != 0 {
		t.Fatalf("%d files committed before any trigger", n)
	}
	clk.Advance(61 * time.Second) // 14:00:01: hour 13 has ended
	waitFor(t, "hour rotation", func() bool { return labeled(t, in.reg, "clickstream_lakewriter_commits_total", "reason", "hour") > 0 })
	waitFor(t, "every topic-partition committed", func() bool { return dataFiles() == len(p.want.next) })

	p.send(t0.Add(2*time.Minute), time.Millisecond, 2, false) // hour 14
	waitFor(t, "records written", func() bool { return in.caughtUp(p.want) })
	before := dataFiles()
	clk.Advance(9 * time.Minute)
	in.lw.mu.Lock()
	pendingAfter9 := 0
	for _, w := range in.lw.tps {
		if w.pending {
			pendingAfter9++
		}
	}
	in.lw.mu.Unlock()
	if pendingAfter9 == 0 {
		t.Fatal("files were committed before the rotation interval")
	}
	clk.Advance(time.Minute + time.Second)
	waitFor(t, "interval rotation", func() bool {
		return labeled(t, in.reg, "clickstream_lakewriter_commits_total", "reason", "interval") == float64(len(p.want.next))
	})
	if n := dataFiles(); n != before+len(p.want.next) {
		t.Errorf("%d files after the interval rotation, want %d", n, before+len(p.want.next))
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	checkLake(t, dir, p.want)
	if got := counter(t, in.reg, "clickstream_lakewriter_visible_latency_seconds"); got != float64(p.want.count()) {
		t.Errorf("latency observations = %v, want one per row (%d)", got, p.want.count())
	}
}

// TestMetastoreRegistration runs against the fake metastore: tables are created, partitions
// registered once their first file is committed, and a metastore outage delays registration
// without stopping the writing.
func TestMetastoreRegistration(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	ms := laketest.StartMetastore(t)
	p := newProducer(t, c)
	dir := t.TempDir()
	cfg := testConfig(c, dir)
	cfg.Lake.MetastoreURI = ms.URI()
	cfg.Lake.MetastoreRetries = 0
	cfg.RegisterRetryMax = 50 * time.Millisecond
	cfg.FileSize = 1 // commit after every batch
	in := start(t, cfg, nil)

	p.send(base, time.Minute, 3, false)
	waitFor(t, "partitions registered", func() bool {
		return len(ms.Partitions("clickstream", "page_view")) > 0 && len(ms.Partitions("clickstream", "dead_letters")) > 0 &&
			counter(t, in.reg, "clickstream_lakewriter_partitions_pending_registration") == 0
	})
	for _, table := range append(append([]string{}, samples.Types...), lake.DeadLettersTable) {
		tbl := ms.Table("clickstream", table)
		if tbl == nil {
			t.Fatalf("table %s not created", table)
		}
		if tbl.Sd.Location != "file:"+path.Join(filepath.ToSlash(dir), "clickstream.db", table) || tbl.TableType != "EXTERNAL_TABLE" {
			t.Errorf("table %s: location %s type %s", table, tbl.Sd.Location, tbl.TableType)
		}
	}
	want := fmt.Sprintf("2026-11-22/13 -> file:%s/clickstream.db/page_view/dt=2026-11-22/hour=13", filepath.ToSlash(dir))
	if got := ms.Partitions("clickstream", "page_view"); len(got) != 1 || got[0] != want {
		t.Errorf("page_view partitions = %q, want [%s]", got, want)
	}

	ms.SetFailing(true)
	p.send(base.Add(time.Hour), time.Minute, 2, false) // hour 14
	waitFor(t, "records committed while the metastore is down", func() bool {
		return in.caughtUp(p.want) && counter(t, in.reg, "clickstream_lakewriter_partitions_pending_registration") > 0
	})
	ms.SetFailing(false)
	waitFor(t, "pending partitions registered after the outage", func() bool {
		return counter(t, in.reg, "clickstream_lakewriter_partitions_pending_registration") == 0
	})
	if got := ms.Partitions("clickstream", "page_view"); len(got) != 2 {
		t.Errorf("page_view partitions after the outage = %q", got)
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	checkLake(t, dir, p.want)
}

// TestRebalance starts a second lakewriter in the same group while the first has files open,
// then stops the first: partitions move twice, open files are committed on revoke, and the lake
// still holds every record exactly once.
func TestRebalance(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	p := newProducer(t, c)
	dir := t.TempDir()
	cfg := testConfig(c, dir)
	a := start(t, cfg, nil)
	p.send(base, time.Minute, 4, false)
	waitFor(t, "first instance caught up", func() bool { return a.caughtUp(p.want) })

	b := start(t, cfg, nil)
	both := func() bool {
		for k, next := range p.want.next {
			ok := false
			for _, in := range []*instance{a, b} {
				in.lw.mu.Lock()
				if w := in.lw.tps[k]; w != nil && w.next >= next {
					ok = true
				}
				in.lw.mu.Unlock()
			}
			if !ok {
				return false
			}
		}
		return true
	}
	waitFor(t, "partitions shared", func() bool {
		b.lw.mu.Lock()
		defer b.lw.mu.Unlock()
		return len(b.lw.tps) > 0
	})
	p.send(base.Add(time.Hour), time.Minute, 4, false)
	waitFor(t, "both caught up", both)
	if got := labeled(t, a.reg, "clickstream_lakewriter_commits_total", "reason", "revoke"); got == 0 {
		t.Error("no commit on revoke")
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	p.send(base.Add(2*time.Hour), time.Minute, 2, false)
	waitFor(t, "second instance caught up alone", func() bool { return b.caughtUp(p.want) })
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	checkLake(t, dir, p.want)
}

// TestLagRecords: lag_records counts, per topic, the records consumed or not yet consumed that
// no committed file holds, up to the partitions' high watermarks; a commit brings it down to
// the transaction markers after the last record.
func TestLagRecords(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	p := newProducer(t, c)
	t0 := time.Date(2026, 11, 22, 13, 10, 0, 0, time.UTC)
	clk := &fakeClock{now: t0}
	cfg := testConfig(c, t.TempDir())
	cfg.RotateInterval = 10 * time.Minute
	in := start(t, cfg, func(lw *Lakewriter) { lw.clock = clk })
	p.send(t0, time.Millisecond, 3, false) // all in hour 13
	waitFor(t, "records written", func() bool { return in.caughtUp(p.want) })

	adm := kadm.NewClient(p.cl)
	ends, err := adm.ListEndOffsets(context.Background(), allTopics()...)
	if err != nil {
		t.Fatal(err)
	}
	want := func(committed bool) map[string]float64 {
		out := map[string]float64{}
		ends.Each(func(o kadm.ListedOffset) {
			from := int64(0)
			if committed {
				from = p.want.next[tp{o.Topic, o.Partition}]
			}
			if _, ok := p.want.next[tp{o.Topic, o.Partition}]; ok {
				out[o.Topic] += float64(o.Offset - from)
			}
		})
		return out
	}
	lagOK := func(want map[string]float64) func() bool {
		return func() bool {
			got := gauges(t, in.reg, "clickstream_lakewriter_lag_records", "topic")
			for topic, n := range want {
				if got[topic] != n {
					return false
				}
			}
			return len(want) > 0
		}
	}
	uncommitted := want(false)
	for topic, n := range uncommitted {
		if n < 3 {
			t.Fatalf("fixture: %s ends %v", topic, n)
		}
	}
	waitFor(t, fmt.Sprintf("lag %v before any commit", uncommitted), lagOK(uncommitted))

	clk.Advance(10*time.Minute + time.Second)
	waitFor(t, "interval rotation", func() bool {
		return labeled(t, in.reg, "clickstream_lakewriter_commits_total", "reason", "interval") == float64(len(p.want.next))
	})
	committed := want(true)
	waitFor(t, fmt.Sprintf("lag %v (the transaction markers) after the commits", committed), lagOK(committed))
	for topic, n := range committed {
		if n >= uncommitted[topic] {
			t.Fatalf("%s: lag %v after the commits, %v before", topic, n, uncommitted[topic])
		}
	}
}

// gauges returns a gauge's values by the value of one label.
func gauges(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
