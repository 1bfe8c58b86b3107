package lake_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/lake/laketest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestThriftMetastoreAgainstFake(t *testing.T) {
	t.Parallel()
	fake := laketest.StartMetastore(t)
	reg := prometheus.NewRegistry()
	ms, err := lake.NewThriftMetastore(fake.URI(), lake.MetastoreOptions{Retries: 2, RetryBackoff: time.Millisecond, Namespace: "test", Reg: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	ctx := context.Background()

	for range 2 { // idempotent
		if err := ms.EnsureDatabase(ctx, "clickstream", "file:/w/clickstream.db"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ms.GetTable(ctx, "clickstream", "page_view"); !errors.Is(err, lake.ErrNotFound) {
		t.Fatalf("GetTable of a missing table: %v", err)
	}
	tbl := lake.Table{
		Database: "clickstream", Name: "page_view", Location: "file:/w/clickstream.db/page_view",
		Columns:       []lake.Column{{Name: "event_id", Type: "string"}, {Name: "context", Type: "struct<app_id:string>"}},
		PartitionKeys: lake.PartitionKeys,
	}
	if changed, err := lake.EnsureTable(ctx, ms, tbl); err != nil || !changed {
		t.Fatalf("EnsureTable create = %v, %v", changed, err)
	}
	if changed, err := lake.EnsureTable(ctx, ms, tbl); err != nil || changed {
		t.Fatalf("EnsureTable again = %v, %v", changed, err)
	}
	raw := fake.Table("clickstream", "page_view")
	if raw.TableType != "EXTERNAL_TABLE" || raw.Parameters["EXTERNAL"] != "TRUE" || raw.Sd.SerdeInfo.SerializationLib != lake.ParquetSerDe {
		t.Errorf("table is not an external Parquet table: %+v", raw)
	}
	if fake.Calls("get_table") != 0 || fake.Calls("get_table_req") == 0 {
		t.Error("must use get_table_req")
	}

	p13 := lake.Partition{Date: "2026-11-22", Hour: "13"}
	parts := []lake.PartitionInfo{
		{Values: p13.Values(), Location: "file:/w/clickstream.db/page_view/dt=2026-11-22/hour=13"},
		{Values: []string{"2026-11-22", "14"}, Location: "file:/w/clickstream.db/page_view/dt=2026-11-22/hour=14"},
	}
	for range 2 { // if-not-exists
		if err := ms.AddPartitions(ctx, "clickstream", "page_view", parts); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.Partitions("clickstream", "page_view"); len(got) != 2 {
		t.Fatalf("partitions = %q", got)
	}

	// A schema that gains a top-level column and a struct field.
	tbl.Columns = []lake.Column{{Name: "event_id", Type: "string"}, {Name: "context", Type: "struct<app_id:string,app_version:string>"}, {Name: "title", Type: "string"}}
	if changed, err := lake.EnsureTable(ctx, ms, tbl); err != nil || !changed {
		t.Fatalf("EnsureTable evolve = %v, %v", changed, err)
	}
	got, err := ms.GetTable(ctx, "clickstream", "page_view")
	if err != nil || !slices.Equal(got.Columns, tbl.Columns) {
		t.Fatalf("columns after evolution = %+v, %v", got.Columns, err)
	}
	p, err := ms.GetPartition(ctx, "clickstream", "page_view", p13.Values())
	if err != nil || p.Location != parts[0].Location {
		t.Fatalf("GetPartition = %+v, %v", p, err)
	}
	if !slices.Equal(p.Columns, tbl.Columns) { // cascaded: the partition reads the new columns too
		t.Errorf("partition columns after evolution = %+v, want %+v", p.Columns, tbl.Columns)
	}
	if env := fake.Calls("alter_table_with_environment_context"); env != 1 {
		t.Errorf("%d alter_table_with_environment_context calls, want 1", env)
	}
	if n := len(fake.Table("clickstream", "page_view").Sd.Cols); n != 3 {
		t.Errorf("table has %d columns", n)
	}
	tbl.Columns = []lake.Column{{Name: "event_id", Type: "bigint"}}
	var conflict *lake.SchemaConflictError
	if _, err := lake.EnsureTable(ctx, ms, tbl); !errors.As(err, &conflict) {
		t.Fatalf("retyping a column: %v, want a SchemaConflictError", err)
	}

	if err := ms.AlterPartitionLocation(ctx, "clickstream", "page_view", p13.Values(), "file:/w/compacted/1"); err != nil {
		t.Fatal(err)
	}
	if p, _ := ms.GetPartition(ctx, "clickstream", "page_view", p13.Values()); p.Location != "file:/w/compacted/1" {
		t.Errorf("location after alter = %q", p.Location)
	}
	if err := ms.AlterPartition(ctx, "clickstream", "page_view", p13.Values(), "file:/w/compacted/2", map[string]string{"numFiles": "1"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := ms.GetPartition(ctx, "clickstream", "page_view", p13.Values()); p.Location != "file:/w/compacted/2" || p.Parameters["numFiles"] != "1" {
		t.Errorf("partition after alter with parameters = %+v", p)
	}
	if _, err := ms.GetPartition(ctx, "clickstream", "page_view", []string{"2026-01-01", "00"}); !errors.Is(err, lake.ErrNotFound) {
		t.Errorf("GetPartition of a missing partition: %v", err)
	}

	// A failing metastore is retried, then reported; it works again when it recovers.
	fake.SetFailing(true)
	before := fake.Calls("get_partition")
	if _, err := ms.GetPartition(ctx, "clickstream", "page_view", p13.Values()); err == nil {
		t.Fatal("no error from a failing metastore")
	}
	if n := fake.Calls("get_partition") - before; n != 3 {
		t.Errorf("%d attempts, want 3 (1 + 2 retries)", n)
	}
	fake.SetFailing(false)
	if _, err := ms.GetPartition(ctx, "clickstream", "page_view", p13.Values()); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "test_metastore_call_errors_total", "get_partition")); n < 3 {
		t.Errorf("errors counted: %v", n)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name, method string) prometheus.Collector {
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
				if l.GetName() == "method" && l.GetValue() == method {
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("no metric %s{method=%q}", name, method)
	return nil
}

func TestMetastoreUnreachable(t *testing.T) {
	t.Parallel()
	ms, err := lake.NewThriftMetastore("thrift://127.0.0.1:1", lake.MetastoreOptions{Retries: 1, RetryBackoff: time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.EnsureDatabase(context.Background(), "x", "file:/x"); err == nil {
		t.Fatal("no error from an unreachable metastore")
	}
}
