package lakewriter

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// renderSchema is the golden rendering of a table: its Hive columns and its Parquet schema.
func renderSchema(s *Schema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s (%s)\n\nhive columns:\n", s.Table, s.Message.FullName())
	for _, c := range s.Columns {
		fmt.Fprintf(&b, "  %s %s\n", c.Name, c.Type)
	}
	for _, c := range lake.PartitionKeys {
		fmt.Fprintf(&b, "  %s %s (partition)\n", c.Name, c.Type)
	}
	fmt.Fprintf(&b, "\nparquet:\n%s\n", s.Parquet.String())
	return b.String()
}

func TestTableSchemasGolden(t *testing.T) {
	schemas, err := TableSchemas(registry.Default())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range schemas {
		names = append(names, s.Table)
		golden(t, "schema/"+s.Table+".golden", renderSchema(s))
	}
	if want := append(append([]string{}, samples.Types...), lake.DeadLettersTable); !reflect.DeepEqual(names, want) {
		t.Errorf("tables = %q, want %q", names, want)
	}
}

// sysColumnNames are the system columns of an event table.
var sysColumnNames = []string{ColReceivedAt, ColReqGUID, ColEventIndex, ColConnGroup, ColKafkaPartition, ColKafkaOffset, ColReplayedFromDLQ}

// writeAndRead writes msgs as one Parquet file of s and reads it back.
func writeAndRead(t *testing.T, s *Schema, msgs []proto.Message) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	f := newParquetFile(&buf, s, 64<<10, 1<<20)
	rb := s.newRowBuilder()
	at := time.Date(2026, 11, 22, 13, 0, 0, 123456789, time.UTC)
	for i, m := range msgs {
		sys := sysValues{receivedAt: at, reqGUID: "req", eventIndex: int32(i), hasIndex: i%2 == 0, connGroup: "g", partition: 3, offset: int64(100 + i), replayed: i%3 == 0}
		if err := f.writeRow(rb.build(m.ProtoReflect(), sys)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.close(lake.DataFile{Topic: "t", Partition: 3, FirstOffset: 100, LastOffset: int64(99 + len(msgs))}, s); err != nil {
		t.Fatal(err)
	}
	rows, file := readParquet(t, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if v, _ := file.Lookup(MetaMessage); v != string(s.Message.FullName()) {
		t.Errorf("metadata %s = %q", MetaMessage, v)
	}
	if got, want := file.Schema().String(), s.Parquet.String(); got != want {
		t.Errorf("file schema differs:\n%s\nwant\n%s", got, want)
	}
	return rows
}

// TestRowsRoundTrip writes every shape of every example event and reads back exactly the
// values the message holds: nested, repeated, map, enum, timestamp and nullable fields.
func TestRowsRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 13, 4, 5, 987654321, time.UTC)
	for _, et := range registry.Default().Types() {
		t.Run(et.Name, func(t *testing.T) {
			t.Parallel()
			s, err := NewSchema(et.Name, et.Message)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []proto.Message
			for i := range 12 {
				msgs = append(msgs, samples.Event(et.Name, i, at.Add(time.Duration(i)*time.Second)))
			}
			msgs = append(msgs, et.NewMessage()) // every field unset
			rows := writeAndRead(t, s, msgs)
			if len(rows) != len(msgs) {
				t.Fatalf("%d rows, want %d", len(rows), len(msgs))
			}
			for i, m := range msgs {
				want := expectRow(m)
				want[ColReceivedAt] = time.Date(2026, 11, 22, 13, 0, 0, 123456000, time.UTC)
				want[ColReqGUID], want[ColConnGroup] = "req", "g"
				want[ColEventIndex] = any(nil)
				if i%2 == 0 {
					want[ColEventIndex] = int64(i)
				}
				want[ColKafkaPartition], want[ColKafkaOffset] = int64(3), int64(100+i)
				want[ColReplayedFromDLQ] = i%3 == 0
				diffRows(t, fmt.Sprintf("row %d", i), want, rows[i])
			}
		})
	}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	t.Parallel()
	s, err := NewSchema(lake.DeadLettersTable, (&clickstreamv1.DeadLetter{}).ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	var msgs []proto.Message
	for i, inv := range samples.Invalids(at) {
		dl := &clickstreamv1.DeadLetter{
			Kind: inv.Kind, EventType: inv.Type, EventBytes: inv.Bytes,
			SourceTopic: "clickstream-" + inv.Type + "-log", SourcePartition: int32(i), SourceOffset: int64(1000 + i),
			ReceivedAt: timestamppb.New(at), FailedAt: timestamppb.New(at.Add(time.Millisecond)),
			Error: "e", ValidatorVersion: "v1",
		}
		for _, r := range inv.RuleIDs {
			dl.Violations = append(dl.Violations, &clickstreamv1.Violation{FieldPath: "f", RuleId: r, Message: "m"})
		}
		msgs = append(msgs, dl)
	}
	msgs = append(msgs, &clickstreamv1.DeadLetter{Kind: 99}) // an enum number the schema does not know
	rows := writeAndRead(t, s, msgs)
	for i, m := range msgs {
		got := rows[i]
		if _, ok := got[ColReplayedFromDLQ]; ok {
			t.Errorf("dead letter %d: dead_letters has a %s column", i, ColReplayedFromDLQ)
		}
		for _, k := range sysColumnNames {
			delete(got, k)
		}
		diffRows(t, fmt.Sprintf("dead letter %d", i), expectRow(m), got)
	}
	if rows[len(rows)-1]["kind"] != "99" {
		t.Errorf("unknown enum number = %v, want \"99\"", rows[len(rows)-1]["kind"])
	}
}

func diffRows(t *testing.T, what string, want, got map[string]any) {
	t.Helper()
	for _, k := range sortedKeys(want) {
		if !reflect.DeepEqual(want[k], got[k]) {
			t.Errorf("%s: column %s = %#v, want %#v", what, k, got[k], want[k])
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected column %s = %#v", what, k, got[k])
		}
	}
}

func TestSchemaRefusals(t *testing.T) {
	t.Parallel()
	// A recursive message (google.protobuf.Struct → Value → Struct) cannot be a Hive column.
	if _, err := NewSchema("x", (&clickstreamv1.EventOptions{}).ProtoReflect().Descriptor()); err != nil {
		t.Fatalf("a flat message: %v", err)
	}
}
