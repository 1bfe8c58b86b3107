package compactor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clickstream/clickstream/compactor/internal/lakefixture"
	"github.com/clickstream/clickstream/compactor/internal/rewrite"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// purchaseRows are lake rows of the purchase events numbered events in partition p. Their
// request guids start with req, so that the same events under another req are re-sent
// events (the same event_id, another _req_guid), not re-deliveries of one record.
func purchaseRows(p lake.Partition, req string, events ...int) []map[string]any {
	var rows []map[string]any
	for _, i := range events {
		at := p.Start().Add(time.Duration(i%3600) * time.Second).Add(time.Duration(i) * time.Microsecond)
		rows = append(rows, lakefixture.Row(samples.Event("purchase", i, at), lakefixture.System{
			ReceivedAt: at, ReqGUID: fmt.Sprintf("%s-%d", req, i/10), EventIndex: int32(i % 10), ConnGroup: "g",
			KafkaPartition: 0, KafkaOffset: int64(i),
		}))
	}
	return rows
}

// encode writes rows as one Parquet file of schema with the given key-value metadata.
func encode(t testing.TB, schema *parquet.Schema, rows []map[string]any, metadata map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := lakefixture.WriteMetadata(&buf, schema, rows, 1000, metadata); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// purchaseSchema is the purchase table's schema without the fields named (an older version).
func purchaseSchema(without ...string) *parquet.Schema {
	et, _ := registry.Default().Lookup("purchase")
	return lakefixture.Schema(et.Message, without...)
}

// put commits data, a file of n rows, into partition p of table tbl as the lakewriter does, and
// registers the table and the partition when there is a metastore.
func (tl *testLake) put(tbl string, p lake.Partition, data []byte, n int) string {
	tl.t.Helper()
	ctx := context.Background()
	dir := tl.l.Layout.PartitionDir(tbl, p)
	if err := tl.l.FS.MkdirAll(dir); err != nil {
		tl.t.Fatal(err)
	}
	name := lake.DataFile{Topic: "clickstream-" + tbl + "-valid", FirstOffset: tl.offset, LastOffset: tl.offset + int64(n) - 1}.Name()
	tl.offset += int64(n)
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
	if ms := tl.l.Metastore; ms != nil {
		db := tl.l.Layout.Database
		if _, err := ms.GetTable(ctx, db, tbl); errors.Is(err, lake.ErrNotFound) {
			err := ms.CreateTable(ctx, lake.Table{Database: db, Name: tbl, Location: tl.l.FS.Location(tl.l.Layout.TableDir(tbl)),
				Columns: []lake.Column{{Name: "event_id", Type: "string"}}, PartitionKeys: lake.PartitionKeys})
			if err != nil {
				tl.t.Fatal(err)
			}
		} else if err != nil {
			tl.t.Fatal(err)
		}
		if err := ms.AddPartitions(ctx, db, tbl, []lake.PartitionInfo{{Values: p.Values(), Location: tl.l.FS.Location(dir)}}); err != nil {
			tl.t.Fatal(err)
		}
	}
	return name
}

// putAtOnce makes a new table appear with files in partition p in one step: written under a
// hidden directory, renamed into place, then registered in the metastore.
func (tl *testLake) putAtOnce(tbl string, p lake.Partition, files ...[]byte) {
	tl.t.Helper()
	ctx := context.Background()
	stage := path.Join(tl.l.Layout.DatabaseDir(), "_stage-"+tbl)
	dir := path.Join(stage, p.Path())
	if err := tl.l.FS.MkdirAll(dir); err != nil {
		tl.t.Fatal(err)
	}
	for i, data := range files {
		name := lake.DataFile{Topic: "clickstream-" + tbl + "-valid", FirstOffset: int64(i * 1000), LastOffset: int64(i*1000 + 999)}.Name()
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
	}
	// lake.Local's Rename moves files only; the test lakes are local directories.
	if err := os.Rename(filepath.FromSlash(stage), filepath.FromSlash(tl.l.Layout.TableDir(tbl))); err != nil {
		tl.t.Fatal(err)
	}
	if ms := tl.l.Metastore; ms != nil {
		db := tl.l.Layout.Database
		err := ms.CreateTable(ctx, lake.Table{Database: db, Name: tbl, Location: tl.l.FS.Location(tl.l.Layout.TableDir(tbl)),
			Columns: []lake.Column{{Name: "event_id", Type: "string"}}, PartitionKeys: lake.PartitionKeys})
		if err != nil {
			tl.t.Fatal(err)
		}
		loc := tl.l.FS.Location(tl.l.Layout.PartitionDir(tbl, p))
		if err := ms.AddPartitions(ctx, db, tbl, []lake.PartitionInfo{{Values: p.Values(), Location: loc}}); err != nil {
			tl.t.Fatal(err)
		}
	}
}

// readBack reads the rows of an encoded file as readers see them.
func readBack(t testing.TB, data []byte) []map[string]any {
	t.Helper()
	rows, err := lakefixture.ReadRows(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// setNull sets the field at path (reaching into structs and list elements) to null where its
// parents are not null: how a row of a file written before the field existed reads once it does.
func setNull(v any, path []string) {
	switch x := v.(type) {
	case map[string]any:
		if len(path) == 1 {
			if _, ok := x[path[0]]; !ok {
				x[path[0]] = nil
			}
			return
		}
		setNull(x[path[0]], path[1:])
	case []any:
		for _, e := range x {
			setNull(e, path)
		}
	}
}

// TestMixedSchemaPartition compacts a partition holding files of three versions of the purchase
// schema (fields added at the top, in a struct, two structs down and in list elements), some
// events in several of them, and checks every value readers see afterwards: the newest
// schema, nulls where a row's file lacked a field, the first copy of each event kept, sorted.
func TestMixedSchemaPartition(t *testing.T) {
	t.Parallel()
	// first_purchase stands for a required column added at the top (like the lakewriter's
	// boolean _replayed_from_dlq): the older files' rows read it as null.
	v1 := []string{"coupon", "first_purchase", "card.last4", "context.device.locale", "items.currency"}
	versions := []struct {
		without []string
		meta    map[string]string
	}{
		{v1, nil}, // written before the lakewriter recorded versions
		{[]string{"items.currency"}, map[string]string{rewrite.MetaSchemaVersion: "2", rewrite.MetaIDField: "event_id"}},
		{nil, map[string]string{rewrite.MetaSchemaVersion: "3", rewrite.MetaIDField: "event_id"}},
	}
	for _, mode := range modes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, mode.metastore)
			var all []map[string]any
			// Files of v3, v1, v2, v1, v3: each repeats 10 events of the one before.
			for f, vi := range []int{2, 0, 1, 0, 2} {
				v := versions[vi]
				var events []int
				for j := range 40 {
					events = append(events, f*30+j)
				}
				data := encode(t, purchaseSchema(v.without...), purchaseRows(part, fmt.Sprintf("f%d", f), events...), v.meta)
				tl.put(table, part, data, len(events))
				for _, r := range readBack(t, data) {
					for _, p := range v.without {
						setNull(r, strings.Split(p, "."))
					}
					all = append(all, r)
				}
			}
			want := lakefixture.Distinct(all)
			// The compactor reads the files in name order, which is the order they were put.
			c := tl.compactor(nil)
			rep, err := c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 1 {
				t.Fatalf("CompactOnce = %+v, %v", rep, err)
			}
			if pr := rep.Compacted[0]; pr.RowsIn != 200 || pr.RowsOut != int64(len(want)) || pr.Duplicates != 40 {
				t.Fatalf("report %+v, want 200 rows in, %d out, 40 duplicates", pr, len(want))
			}
			got, names := tl.visible()
			if d := lakefixture.Diff(want, got); d != "" {
				t.Fatalf("after compaction: %s", d)
			}
			m, err := readManifest(tl.l.FS, tl.location())
			if err != nil {
				t.Fatal(err)
			}
			// v1's files say nothing about the id: the registry (registry.Default) decides.
			if !slices.Equal(m.DedupKeys, []string{"event_id", "_req_guid", "_event_index"}) || m.IDFrom != "registry" {
				t.Errorf("manifest dedup keys %v from %q", m.DedupKeys, m.IDFrom)
			}
			f, err := tl.l.FS.Open(path.Join(tl.location(), names[0]))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cols, err := lakefixture.ReadRows(f, f.Size())
			if err != nil || len(cols) == 0 {
				t.Fatal(err)
			}
			for _, c := range []string{"coupon", "first_purchase", "_kafka_offset"} {
				if _, ok := cols[0][c]; !ok {
					t.Errorf("column %s missing from the compacted file", c)
				}
			}
		})
	}
}

// TestSchemaConflictLeavesThePartitionAsIs: a file whose column has another type than the same
// column in the other files makes the compactor refuse the partition, with a log line and the
// schema-conflict gauge, and leave it untouched; once the odd file is gone it is compacted.
func TestSchemaConflictLeavesThePartitionAsIs(t *testing.T) {
	t.Parallel()
	for _, mode := range modes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, mode.metastore)
			tl.columns = keyColumns
			tl.smallFiles()
			before, _ := tl.visible()
			// user_id as a number: not something a reader of the table can be given in one column.
			odd := parquet.NewSchema("Purchase", parquet.Group{
				"event_id": parquet.String(), "user_id": parquet.Int(64), "_req_guid": parquet.String(), "_event_index": parquet.Int(32),
			})
			data := encode(t, odd, []map[string]any{{"event_id": "odd", "user_id": int64(7), "_req_guid": "r", "_event_index": int32(0)}}, nil)
			oddName := tl.put(table, part, data, 1)
			files := func() []string {
				t.Helper()
				fis, err := dataFiles(tl.l.FS, tl.location())
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, fi := range fis {
					out = append(out, fmt.Sprintf("%s %d %d", fi.Name(), fi.Size(), fi.ModTime().UnixNano()))
				}
				return out
			}
			filesBefore := files()

			c := tl.compactor(nil)
			rep, err := c.CompactOnce(context.Background())
			if !errors.Is(err, rewrite.ErrSchema) || len(rep.Compacted) != 0 || !slices.Equal(rep.Pending[table], []string{part.String()}) {
				t.Fatalf("CompactOnce = %+v, %v; want the partition refused for its schema and pending", rep, err)
			}
			if !strings.Contains(err.Error(), "user_id") {
				t.Errorf("error %v does not name the column", err)
			}
			if v := testutil.ToFloat64(c.m.schemaConflicts.WithLabelValues(table)); v != 1 {
				t.Errorf("partitions_schema_conflict = %v, want 1", v)
			}
			if v := testutil.ToFloat64(c.m.errors.WithLabelValues(table, stepSchema)); v != 1 {
				t.Errorf("errors_total{step=schema} = %v, want 1", v)
			}
			if !strings.HasSuffix(tl.location(), tl.l.Layout.PartitionDir(table, part)) {
				t.Errorf("location changed to %s", tl.location())
			}
			if d := tl.dirs(); len(d) != 0 {
				t.Errorf("generation directories left: %v", d)
			}
			if after := files(); !slices.Equal(filesBefore, after) || len(after) != 13 {
				t.Fatalf("the partition's files changed from %v to %v", filesBefore, after)
			}

			// An operator moves the odd file away: the next scan compacts the rest.
			if err := tl.l.FS.Remove(path.Join(tl.l.Layout.PartitionDir(table, part), oddName)); err != nil {
				t.Fatal(err)
			}
			if rep, err := c.CompactOnce(context.Background()); err != nil || len(rep.Compacted) != 1 {
				t.Fatalf("after the fix: %+v, %v", rep, err)
			}
			if v := testutil.ToFloat64(c.m.schemaConflicts.WithLabelValues(table)); v != 0 {
				t.Errorf("partitions_schema_conflict = %v after the fix, want 0", v)
			}
			got, _ := tl.visible()
			if d := lakefixture.Diff(lakefixture.Distinct(before), got); d != "" {
				t.Fatal(d)
			}
		})
	}
}

func emptyRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDedupKey: the id column rows are deduplicated by comes from the files' metadata when all
// of them declare the same, else from the schema registry in force (deps.Schemas, else the
// built-in one). The partition holds events 0-49 and, re-sent in other requests, 25-74: by
// the id 25 are duplicates, by request guid and index none are.
func TestDedupKey(t *testing.T) {
	t.Parallel()
	id := func(v string) map[string]string {
		return map[string]string{rewrite.MetaSchemaVersion: "5", rewrite.MetaIDField: v}
	}
	noID := map[string]string{rewrite.MetaSchemaVersion: "5"}
	tests := []struct {
		name       string
		schemas    func(t testing.TB) *schemastore.Live
		meta       [2]map[string]string
		duplicates int64
		keys       []string
		from       string
	}{
		{"files declare it, the registry does not know the type",
			func(t testing.TB) *schemastore.Live { return schemastore.Static(emptyRegistry(t)) },
			[2]map[string]string{id("event_id"), id("event_id")}, 25, []string{"event_id", "_req_guid", "_event_index"}, "files"},
		{"files declare none, the registry has one",
			func(testing.TB) *schemastore.Live { return schemastore.Static(registry.Default()) },
			[2]map[string]string{noID, noID}, 0, []string{"_req_guid", "_event_index"}, "files"},
		{"files say nothing: the live registry",
			func(testing.TB) *schemastore.Live { return schemastore.Static(registry.Default()) },
			[2]map[string]string{nil, nil}, 25, []string{"event_id", "_req_guid", "_event_index"}, "registry"},
		{"files say nothing: the live registry does not know the type",
			func(t testing.TB) *schemastore.Live { return schemastore.Static(emptyRegistry(t)) },
			[2]map[string]string{nil, nil}, 0, []string{"_req_guid", "_event_index"}, "registry"},
		{"files say nothing, no live registry: the built-in one",
			func(testing.TB) *schemastore.Live { return nil },
			[2]map[string]string{nil, nil}, 25, []string{"event_id", "_req_guid", "_event_index"}, "registry"},
		{"files disagree: the registry",
			func(t testing.TB) *schemastore.Live { return schemastore.Static(emptyRegistry(t)) },
			[2]map[string]string{id("event_id"), noID}, 0, []string{"_req_guid", "_event_index"}, "registry"},
		{"a live registry holding nothing",
			func(testing.TB) *schemastore.Live { return schemastore.Static(nil) },
			[2]map[string]string{nil, nil}, 0, []string{"_req_guid", "_event_index"}, "registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, false)
			tl.put(table, part, encode(t, purchaseSchema(), purchaseRows(part, "a", seq(0, 50)...), tt.meta[0]), 50)
			tl.put(table, part, encode(t, purchaseSchema(), purchaseRows(part, "b", seq(25, 75)...), tt.meta[1]), 50)
			c, err := New(tl.cfg, run.Deps{Reg: telemetry.NewRegistry(), Schemas: tt.schemas(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.now = func() time.Time { return tl.clock }
			rep, err := c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 1 {
				t.Fatalf("CompactOnce = %+v, %v", rep, err)
			}
			if d := rep.Compacted[0].Duplicates; d != tt.duplicates {
				t.Errorf("%d duplicates, want %d", d, tt.duplicates)
			}
			m, err := readManifest(tl.l.FS, tl.location())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.DedupKeys, tt.keys) || m.IDFrom != tt.from {
				t.Errorf("dedup keys %v from %q, want %v from %q", m.DedupKeys, m.IDFrom, tt.keys, tt.from)
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestDedupKeyFollowsTheLiveRegistry: a version pushed while the compactor runs decides the
// next compaction, without a restart.
func TestDedupKeyFollowsTheLiveRegistry(t *testing.T) {
	t.Parallel()
	tl := newTestLake(t, false)
	next := lake.Partition{Date: part.Date, Hour: "14"}
	for _, p := range []lake.Partition{part, next} {
		tl.put(table, p, encode(t, purchaseSchema(), purchaseRows(p, "a", seq(0, 50)...), nil), 50)
		tl.put(table, p, encode(t, purchaseSchema(), purchaseRows(p, "b", seq(25, 75)...), nil), 50)
	}
	live := schemastore.Static(emptyRegistry(t))
	c, err := New(tl.cfg, run.Deps{Schemas: live})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pr, err := c.CompactPartition(context.Background(), table, part)
	if err != nil || pr.Duplicates != 0 {
		t.Fatalf("before the push: %+v, %v; want no duplicates (no id known)", pr, err)
	}
	live.Publish(registry.Default())
	pr, err = c.CompactPartition(context.Background(), table, next)
	if err != nil || pr.Duplicates != 25 {
		t.Fatalf("after the push: %+v, %v; want 25 duplicates by event_id", pr, err)
	}
}

// TestNewWithEmptyDeps: a compactor built with no logger, registry, health or schemas works.
func TestNewWithEmptyDeps(t *testing.T) {
	t.Parallel()
	for _, mode := range modes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, mode.metastore)
			tl.smallFiles()
			c, err := New(tl.cfg, run.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			c.now = func() time.Time { return tl.clock }
			rep, err := c.CompactOnce(context.Background())
			if err != nil || len(rep.Compacted) != 1 || rep.Compacted[0].Duplicates != 11*12 {
				t.Fatalf("CompactOnce = %+v, %v", rep, err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNewTableIsCompactedOnTheNextScan: a table that appears while the compactor runs as a
// service (an event type pushed after it started) is compacted by the next scan, deduplicated
// by the id its files declare although no registry the compactor has knows the type.
func TestNewTableIsCompactedOnTheNextScan(t *testing.T) {
	t.Parallel()
	for _, mode := range modes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			tl := newTestLake(t, mode.metastore)
			tl.columns = keyColumns
			tl.smallFiles()
			tl.cfg.Interval = 10 * time.Millisecond
			c := tl.compactor(nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run = %v", err)
				}
			}()
			compacted := func(tbl string) bool {
				_, err := readManifest(tl.l.FS, tl.locationOf(tbl, part))
				return err == nil
			}
			waitFor := func(what string, cond func() bool) {
				t.Helper()
				for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s", what)
					}
				}
			}
			waitFor("the first table's compaction", func() bool { return compacted(table) })

			const newTable = "signup" // not in registry.Default
			if _, ok := registry.Default().Lookup(newTable); ok {
				t.Fatalf("fixture: %s is a built-in type", newTable)
			}
			meta := map[string]string{rewrite.MetaSchemaVersion: "7", rewrite.MetaIDField: "event_id"}
			a := encode(t, purchaseSchema(), purchaseRows(part, "a", seq(0, 50)...), meta)
			b := encode(t, purchaseSchema(), purchaseRows(part, "b", seq(25, 75)...), meta)
			all := append(readBack(t, a), readBack(t, b)...)
			// Both files appear at once, so that the compaction awaited holds both.
			tl.putAtOnce(newTable, part, a, b)
			waitFor("the new table's compaction", func() bool { return compacted(newTable) })

			tl.columns = nil
			got, _ := tl.visibleIn(newTable, part)
			if d := lakefixture.Diff(lakefixture.Distinct(all), got); d != "" || len(got) != 75 {
				t.Fatalf("new table after compaction (%d rows): %s", len(got), d)
			}
			m, err := readManifest(tl.l.FS, tl.locationOf(newTable, part))
			if err != nil {
				t.Fatal(err)
			}
			if m.Duplicates != 25 || m.IDFrom != "files" || m.DedupKeys[0] != "event_id" {
				t.Errorf("manifest: %d duplicates, dedup keys %v from %q", m.Duplicates, m.DedupKeys, m.IDFrom)
			}
		})
	}
}
