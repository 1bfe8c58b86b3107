package rewrite

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"

	"github.com/clickstream/clickstream/compactor/internal/lakefixture"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

var (
	str = arrow.BinaryTypes.String
	i64 = arrow.PrimitiveTypes.Int64
)

func fld(name string, typ arrow.DataType, nullable bool) arrow.Field {
	return arrow.Field{Name: name, Type: typ, Nullable: nullable}
}

func sch(fields ...arrow.Field) *arrow.Schema { return arrow.NewSchema(fields, nil) }

func listOf(elem arrow.DataType) arrow.DataType {
	return arrow.ListOfField(arrow.Field{Name: "element", Type: elem, Nullable: true})
}

func mapOf(value arrow.DataType) arrow.DataType {
	return arrow.MapOfFields(arrow.Field{Name: "key", Type: str}, arrow.Field{Name: "value", Type: value, Nullable: true})
}

func TestUnify(t *testing.T) {
	t.Parallel()
	device := func(fields ...arrow.Field) arrow.DataType {
		return arrow.StructOf(append([]arrow.Field{fld("model", str, true)}, fields...)...)
	}
	locale := fld("locale", str, true)
	tests := []struct {
		name    string
		schemas []*arrow.Schema
		base    int
		want    *arrow.Schema
		wantErr string // with ErrSchema
	}{
		{"same", []*arrow.Schema{sch(fld("a", str, true)), sch(fld("a", str, true))}, 1, sch(fld("a", str, true)), ""},
		{"added column, newest first",
			[]*arrow.Schema{sch(fld("a", str, true), fld("b", i64, true)), sch(fld("a", str, true))}, 0,
			sch(fld("a", str, true), fld("b", i64, true)), ""},
		{"added column, newest last",
			[]*arrow.Schema{sch(fld("a", str, true)), sch(fld("a", str, true), fld("b", i64, true))}, 1,
			sch(fld("a", str, true), fld("b", i64, true)), ""},
		{"columns only older files have come after the newest file's, in the order met",
			[]*arrow.Schema{sch(fld("x", str, true), fld("a", str, true)), sch(fld("y", str, true), fld("a", str, true)), sch(fld("a", str, true), fld("b", i64, true))}, 2,
			sch(fld("a", str, true), fld("b", i64, true), fld("x", str, true), fld("y", str, true)), ""},
		{"struct field added",
			[]*arrow.Schema{sch(fld("device", device(), true)), sch(fld("device", device(locale), true))}, 1,
			sch(fld("device", device(locale), true)), ""},
		{"struct field added two levels down",
			[]*arrow.Schema{
				sch(fld("context", arrow.StructOf(fld("device", device(), true)), true)),
				sch(fld("context", arrow.StructOf(fld("app", str, true), fld("device", device(locale), true)), true)),
			}, 1,
			sch(fld("context", arrow.StructOf(fld("app", str, true), fld("device", device(locale), true)), true)), ""},
		{"struct field added in list elements",
			[]*arrow.Schema{sch(fld("items", listOf(device()), true)), sch(fld("items", listOf(device(locale)), true))}, 1,
			sch(fld("items", listOf(device(locale)), true)), ""},
		{"struct field added in map values",
			[]*arrow.Schema{sch(fld("m", mapOf(device(locale)), true)), sch(fld("m", mapOf(device()), true))}, 0,
			sch(fld("m", mapOf(device(locale)), true)), ""},
		{"required to optional",
			[]*arrow.Schema{sch(fld("a", str, false)), sch(fld("a", str, true))}, 0,
			sch(fld("a", str, true)), ""},
		{"type changed",
			[]*arrow.Schema{sch(fld("a", str, true)), sch(fld("a", i64, true))}, 1,
			nil, "column a is int64 in one file and utf8 in another"},
		{"type changed in a struct",
			[]*arrow.Schema{sch(fld("device", device(fld("locale", i64, true)), true)), sch(fld("device", device(locale), true))}, 1,
			nil, "column device.locale is"},
		{"type changed in list elements",
			[]*arrow.Schema{sch(fld("items", listOf(str), true)), sch(fld("items", listOf(i64), true))}, 1,
			nil, "column items[] is"},
		{"struct became a string",
			[]*arrow.Schema{sch(fld("device", str, true)), sch(fld("device", device(), true))}, 1,
			nil, "column device is"},
		{"timestamp unit changed",
			[]*arrow.Schema{sch(fld("t", arrow.FixedWidthTypes.Timestamp_us, true)), sch(fld("t", arrow.FixedWidthTypes.Timestamp_ms, true))}, 1,
			nil, "column t is"},
		{"a required column older files lack becomes nullable",
			[]*arrow.Schema{sch(fld("a", str, false)), sch(fld("a", str, false), fld("b", i64, false))}, 1,
			sch(fld("a", str, false), fld("b", i64, true)), ""},
		{"a required column only older files have becomes nullable",
			[]*arrow.Schema{sch(fld("a", str, false), fld("x", i64, false)), sch(fld("a", str, false))}, 1,
			sch(fld("a", str, false), fld("x", i64, true)), ""},
		{"a required struct field older files lack becomes nullable",
			[]*arrow.Schema{sch(fld("device", device(), false)), sch(fld("device", device(fld("locale", str, false)), false))}, 1,
			sch(fld("device", device(locale), false)), ""},
		{"a required field of list elements older files lack becomes nullable",
			[]*arrow.Schema{sch(fld("items", listOf(device(fld("locale", str, false))), false)), sch(fld("items", listOf(device()), false))}, 0,
			sch(fld("items", listOf(device(locale)), false)), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := unify(tt.schemas, tt.base)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("unify = %v, %v; want ErrSchema containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("unify =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestConform checks every value of batches of an older schema read as the unified one,
// sliced so that the arrays have offsets, as Arrow's readers hand them out.
func TestConform(t *testing.T) {
	t.Parallel()
	device := arrow.StructOf(fld("model", str, true))
	deviceV2 := arrow.StructOf(fld("model", str, true), fld("locale", str, true))
	tests := []struct {
		name       string
		from, to   arrow.DataType
		json, want string // the first row is sliced off
	}{
		{"struct gains a field", device, deviceV2,
			`[{"model":"skip"}, {"model":"a"}, null, {"model":null}]`,
			`[{"locale":null,"model":"a"},null,{"locale":null,"model":null}]`},
		{"struct in a struct", arrow.StructOf(fld("d", device, true), fld("n", i64, true)), arrow.StructOf(fld("d", deviceV2, true), fld("n", i64, true), fld("app", str, true)),
			`[{"d":{"model":"skip"},"n":0}, {"d":{"model":"a"},"n":1}, {"d":null,"n":2}, null]`,
			`[{"app":null,"d":{"locale":null,"model":"a"},"n":1},{"app":null,"d":null,"n":2},null]`},
		{"list elements gain a field", listOf(device), listOf(deviceV2),
			`[[{"model":"skip"}], [{"model":"a"},{"model":"b"}], null, [], [null, {"model":"c"}]]`,
			`[[{"locale":null,"model":"a"},{"locale":null,"model":"b"}],null,[],[null,{"locale":null,"model":"c"}]]`},
		{"map values gain a field", mapOf(device), mapOf(deviceV2),
			`[[{"key":"k","value":{"model":"skip"}}], [{"key":"x","value":{"model":"a"}}], null, [{"key":"y","value":null}]]`,
			`[[{"key":"x","value":{"locale":null,"model":"a"}}],null,[{"key":"y","value":null}]]`},
		{"a required field gained", device, arrow.StructOf(fld("model", str, true), fld("locale", str, true)),
			`[{"model":"skip"}, {"model":"a"}]`,
			`[{"locale":null,"model":"a"}]`},
		{"only nullability", arrow.StructOf(fld("model", str, false)), arrow.StructOf(fld("model", str, true)),
			`[{"model":"skip"}, {"model":"a"}]`,
			`[{"model":"a"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			arr, _, err := array.FromJSON(mem, tt.from, strings.NewReader(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			defer arr.Release()
			file := sch(fld("id", i64, true), fld("c", tt.from, true))
			target := sch(fld("c", tt.to, true), fld("id", i64, true), fld("new", str, true))
			ids := make([]int64, arr.Len())
			for i := range ids {
				ids[i] = int64(i)
			}
			b := array.NewInt64Builder(mem)
			b.AppendValues(ids, nil)
			idArr := b.NewArray()
			b.Release()
			defer idArr.Release()
			rec := array.NewRecordBatch(file, []arrow.Array{idArr, arr}, int64(arr.Len()))
			defer rec.Release()
			sliced := rec.NewSlice(1, rec.NumRows())
			defer sliced.Release()

			out := newConformer(file, target).conform(mem, sliced)
			defer out.Release()
			if !out.Schema().Equal(target) {
				t.Fatalf("schema %s", out.Schema())
			}
			got, err := out.Column(0).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(string(got), "\n", ""); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if err := out.Column(0).(interface{ ValidateFull() error }).ValidateFull(); err != nil {
				t.Fatalf("invalid array: %v", err)
			}
			if id := out.Column(1).(*array.Int64); id.Value(0) != 1 || out.Column(2).NullN() != out.Column(2).Len() {
				t.Fatalf("other columns: %v %v", out.Column(1), out.Column(2))
			}
		})
	}
}

func TestNewestAndDeclaredID(t *testing.T) {
	t.Parallel()
	narrow, wide := sch(fld("a", str, true)), sch(fld("a", str, true), fld("b", str, true))
	in := func(s *arrow.Schema, kv ...string) inputFile {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return inputFile{arrow: s, meta: m}
	}
	const v, id = MetaSchemaVersion, MetaIDField
	tests := []struct {
		name       string
		files      []inputFile
		newest     int
		id         string
		idDeclared bool
	}{
		{"no metadata: the widest, the last of equals",
			[]inputFile{in(wide), in(narrow), in(wide), in(narrow)}, 2, "", false},
		{"the highest version, not the widest",
			[]inputFile{in(wide, v, "3", id, "event_id"), in(narrow, v, "10", id, "event_id"), in(wide, v, "9", id, "event_id")}, 1, "event_id", true},
		{"files without a version are older",
			[]inputFile{in(narrow, v, "1", id, "event_id"), in(wide)}, 0, "", false},
		{"all declare the same id",
			[]inputFile{in(narrow, id, "event_id"), in(narrow, id, "event_id")}, 1, "event_id", true},
		{"all declare none: versions without an id",
			[]inputFile{in(narrow, v, "4"), in(narrow, v, "4")}, 1, "", true},
		{"disagree on the id",
			[]inputFile{in(narrow, id, "event_id"), in(narrow, id, "order_id")}, 1, "", false},
		{"one declares an id, one none",
			[]inputFile{in(narrow, v, "4", id, "event_id"), in(narrow, v, "5")}, 1, "", false},
		{"one declares, one says nothing",
			[]inputFile{in(narrow, id, "event_id"), in(narrow)}, 1, "", false},
		{"an unreadable version counts as none",
			[]inputFile{in(narrow, v, "7"), in(wide, v, "x")}, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := newest(tt.files); got != tt.newest {
				t.Errorf("newest = %d, want %d", got, tt.newest)
			}
			if got, ok := declaredID(tt.files); got != tt.id || ok != tt.idDeclared {
				t.Errorf("declaredID = %q, %v; want %q, %v", got, ok, tt.id, tt.idDeclared)
			}
		})
	}
}

// writeFile writes rows as a lake file of schema with metadata into dir.
func writeFile(t testing.TB, dir, name string, schema *parquet.Schema, rows []map[string]any, metadata map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := lakefixture.WriteMetadata(&buf, schema, rows, 64, metadata); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// setNull sets the field at path (dotted, reaching into structs and list elements) to null in a
// row read as JSON, where its parents are not null: what a row of a file without the field
// reads as once the field exists.
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

// TestRewriteMergesOlderSchemasNested compacts a partition whose files were written under three
// versions of the purchase message: v1 without coupon, the card's last4, the device's locale
// and the items' currency; v2 with all but the items' currency; v3 complete. The same events
// come in several versions (re-deliveries): the first copy read is kept with its nulls. Every
// value of every row is checked.
func TestRewriteMergesOlderSchemasNested(t *testing.T) {
	t.Parallel()
	et, _ := registry.Default().Lookup("purchase")
	versions := []struct {
		version string
		without []string
	}{
		{"1", []string{"coupon", "card.last4", "context.device.locale", "items.currency"}},
		{"2", []string{"items.currency"}},
		{"3", nil},
	}
	// The order read: v2, v3, v1, v3, v1, v2 (the newest is neither first nor last).
	order := []int{1, 2, 0, 2, 0, 1}
	for _, newestFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("newest first %v", newestFirst), func(t *testing.T) {
			t.Parallel()
			in := t.TempDir()
			ord := order
			if newestFirst {
				ord = []int{2, 0, 1, 0, 1, 2}
			}
			var files []string
			var all []map[string]any
			for f, vi := range ord {
				v := versions[vi]
				var rows []map[string]any
				for j := range 60 {
					n := f*40 + j // the first 20 events of each file repeat the file before's last 20
					at := hour.Add(time.Duration(n) * time.Second)
					rows = append(rows, lakefixture.Row(samples.Event("purchase", n, at), lakefixture.System{
						ReceivedAt: at, ReqGUID: fmt.Sprintf("req-%d-%d", f, j), EventIndex: int32(j), ConnGroup: "g",
						KafkaPartition: int32(vi), KafkaOffset: int64(f*1000 + j),
					}))
				}
				name := writeFile(t, in, fmt.Sprintf("f%d-v%s.parquet", f, v.version), lakefixture.Schema(et.Message, v.without...), rows,
					map[string]string{MetaSchemaVersion: v.version, MetaIDField: "event_id"})
				files = append(files, name)
				for _, r := range jsonRows(t, name) {
					for _, p := range v.without {
						setNull(r, strings.Split(p, "."))
					}
					all = append(all, r)
				}
			}
			want := lakefixture.Distinct(all)
			opt := testOptions()
			opt.IDColumn = "" // the files declare it
			res, outs := rewriteTo(t, t.TempDir(), inputsOf(files), opt)
			if !res.IDFromFiles || res.DedupKeys[0] != "event_id" || res.Duplicates != 5*20 || res.RowsOut != int64(len(want)) {
				t.Fatalf("result %+v, want dedup by the files' event_id, %d duplicates, %d rows", res, 5*20, len(want))
			}
			var got []map[string]any
			for _, o := range outs {
				got = append(got, jsonRows(t, o)...)
			}
			diffRows(t, want, got)
			// The output has the newest version's schema, column and field order included, but
			// the required fields older files lack are optional: their rows hold nulls there.
			wantSchema := parquetSchema(t, files[slicesIndex(ord, 2)])
			for _, f := range []struct{ after, name string }{{"unit_price", "currency"}, {"brand", "last4"}, {"model", "locale"}} {
				at := strings.Index(wantSchema, " "+f.after)
				old := "required byte_array field_id=-1 " + f.name + " "
				i := strings.Index(wantSchema[max(at, 0):], old)
				if at < 0 || i < 0 {
					t.Fatalf("fixture: field %s not found after %s in\n%s", f.name, f.after, wantSchema)
				}
				i += at
				wantSchema = wantSchema[:i] + "optional" + wantSchema[i+len("required"):]
			}
			if got := parquetSchema(t, outs[0]); got != wantSchema {
				t.Fatalf("want the newest schema:\n%s\n---- got ----\n%s", wantSchema, got)
			}
			if md := fileMetadata(t, outs[0]); md[MetaSchemaVersion] != "3" || md[MetaIDField] != "event_id" {
				t.Errorf("metadata %v: want schema version 3 and id field event_id", md)
			}
			// Spot checks on what the comparison above covers: old rows have nulls where the
			// newer versions have values.
			var v1Rows, v3Rows int
			for _, r := range got {
				items, _ := r["items"].([]any)
				if len(items) == 0 {
					continue
				}
				if items[0].(map[string]any)["currency"] == nil {
					v1Rows++
				} else {
					v3Rows++
				}
			}
			if v1Rows == 0 || v3Rows == 0 {
				t.Fatalf("%d rows with a null item currency, %d with one: want both", v1Rows, v3Rows)
			}
		})
	}
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestRewriteRefusesConflictingFiles: files that disagree on a column's type are not rewritten,
// and nothing is written.
func TestRewriteRefusesConflictingFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b parquet.Node
	}{
		{"string and int64", parquet.String(), parquet.Int(64)},
		{"int32 and int64", parquet.Int(32), parquet.Int(64)},
		{"struct field type", parquet.Group{"x": parquet.String()}, parquet.Group{"x": parquet.Int(64)}},
		{"list element type", parquet.List(parquet.String()), parquet.List(parquet.Int(64))},
		{"timestamp units", parquet.Timestamp(parquet.Microsecond), parquet.Timestamp(parquet.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := t.TempDir()
			mk := func(name string, n parquet.Node) string {
				s := parquet.NewSchema("E", parquet.Group{
					"event_id": parquet.String(), "_req_guid": parquet.String(), "_event_index": parquet.Int(32), "c": parquet.Optional(n),
				})
				return writeFile(t, in, name, s, []map[string]any{{"event_id": "e1", "_req_guid": "r", "_event_index": int32(0)}}, nil)
			}
			files := []string{mk("a.parquet", tt.a), mk("b.parquet", tt.b)}
			created := 0
			_, err := Rewrite(t.Context(), inputsOf(files), func(int) (io.WriteCloser, error) {
				created++
				return nil, errors.New("no output expected")
			}, testOptions())
			if !errors.Is(err, ErrSchema) || created != 0 {
				t.Fatalf("Rewrite = %v after %d outputs; want ErrSchema and none", err, created)
			}
		})
	}
}
