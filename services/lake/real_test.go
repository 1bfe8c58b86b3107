package lake

import (
	"context"
	"errors"
	"os"
	"path"
	"strconv"
	"testing"
	"time"
)

// The real HDFS and Hive Metastore are not needed by `go test ./...`. With the local stack up
// (make stack-up), run these with
//
//	LAKE_TEST_HDFS=hdfs://127.0.0.1:8020/tmp/laketest LAKE_TEST_HDFS_USER=root \
//	LAKE_TEST_METASTORE=thrift://127.0.0.1:9083 go test -run Real ./lake/

func TestRealHDFS(t *testing.T) {
	url := os.Getenv("LAKE_TEST_HDFS")
	if url == "" {
		t.Skip("LAKE_TEST_HDFS not set")
	}
	fsys, root, err := OpenFS(url, FSOptions{HDFSUser: os.Getenv("LAKE_TEST_HDFS_USER")})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	root = path.Join(root, strconv.FormatInt(time.Now().UnixNano(), 36))
	defer fsys.RemoveAll(root)
	testFS(t, fsys, root)
}

func TestRealMetastore(t *testing.T) {
	uri := os.Getenv("LAKE_TEST_METASTORE")
	if uri == "" {
		t.Skip("LAKE_TEST_METASTORE not set")
	}
	ms, err := NewThriftMetastore(uri, MetastoreOptions{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	ctx := context.Background()
	db := "laketest_" + strconv.FormatInt(time.Now().Unix(), 36)
	loc := os.Getenv("LAKE_TEST_HDFS")
	if loc == "" {
		loc = "file:/tmp"
	}
	if err := ms.EnsureDatabase(ctx, db, loc+"/"+db+".db"); err != nil {
		t.Fatal(err)
	}
	tbl := Table{Database: db, Name: "t", Location: loc + "/" + db + ".db/t", PartitionKeys: PartitionKeys,
		Columns: []Column{{Name: "a", Type: "string"}, {Name: "s", Type: "struct<x:int>"}, {Name: "ts", Type: "timestamp"}}}
	if _, err := EnsureTable(ctx, ms, tbl); err != nil {
		t.Fatal(err)
	}
	p := PartitionInfo{Values: []string{"2026-11-22", "13"}, Location: tbl.Location + "/dt=2026-11-22/hour=13"}
	for range 2 {
		if err := ms.AddPartitions(ctx, db, "t", []PartitionInfo{p}); err != nil {
			t.Fatal(err)
		}
	}
	// A new column and a struct field appended, as a new schema version brings them: the
	// metastore accepts the alteration (types compared by position) and cascades it to the
	// existing partition.
	tbl.Columns = append(tbl.Columns, Column{Name: "b", Type: "array<string>"}, Column{Name: "_replayed_from_dlq", Type: "boolean"})
	tbl.Columns[1].Type = "struct<x:int,y:string>"
	if changed, err := EnsureTable(ctx, ms, tbl); err != nil || !changed {
		t.Fatalf("evolve: %v %v", changed, err)
	}
	if got, err := ms.GetTable(ctx, db, "t"); err != nil || len(got.Columns) != len(tbl.Columns) || NormalizeHiveType(got.Columns[1].Type) != "struct<x:int,y:string>" {
		t.Fatalf("table after evolution: %+v, %v", got.Columns, err)
	}
	if got, err := ms.GetPartition(ctx, db, "t", p.Values); err != nil || len(got.Columns) != len(tbl.Columns) || NormalizeHiveType(got.Columns[1].Type) != "struct<x:int,y:string>" {
		t.Fatalf("partition after evolution (cascade): %+v, %v", got.Columns, err)
	}
	if err := ms.AlterPartitionLocation(ctx, db, "t", p.Values, tbl.Location+"/.v/1"); err != nil {
		t.Fatal(err)
	}
	got, err := ms.GetPartition(ctx, db, "t", p.Values)
	if err != nil || got.Location != tbl.Location+"/.v/1" {
		t.Fatalf("GetPartition = %+v, %v", got, err)
	}
	if _, err := ms.GetPartition(ctx, db, "t", []string{"2026-01-01", "00"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing partition: %v", err)
	}
}
