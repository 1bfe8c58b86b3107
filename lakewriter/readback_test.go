package lakewriter

import (
	"fmt"
	"io"
	"math/big"
	"sort"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// This file reads Parquet files back into plain Go values for the tests, independently of the
// writer: the nesting comes from the file's own schema and the values' levels (Dremel record
// assembly), and the expected values come straight from the protobuf message. Conventions:
// groups are map[string]any, lists []any, maps map[string]any keyed by the key's text, integers
// int64, uint64 decimals their decimal text, floats float64, bytes []byte, timestamps UTC
// time.Time, NULL nil.

// readParquet returns every row of a Parquet file and the file.
func readParquet(t *testing.T, r io.ReaderAt, size int64) ([]map[string]any, *parquet.File) {
	t.Helper()
	f, err := parquet.OpenFile(r, size)
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	schema := f.Schema()
	reader := parquet.NewReader(f)
	defer reader.Close()
	var out []map[string]any
	buf := make([]parquet.Row, 64)
	for {
		n, err := reader.ReadRows(buf)
		for _, row := range buf[:n] {
			out = append(out, assemble(schema, row))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read rows: %v", err)
		}
	}
	return out, f
}

type leafPath struct {
	nodes []parquet.Node
	names []string
}

func leafPaths(n parquet.Node, nodes []parquet.Node, names []string, out *[]leafPath) {
	if n.Leaf() {
		*out = append(*out, leafPath{nodes: append([]parquet.Node(nil), nodes...), names: append([]string(nil), names...)})
		return
	}
	for _, f := range n.Fields() {
		leafPaths(f, append(nodes, f), append(names, f.Name()), out)
	}
}

func assemble(schema *parquet.Schema, row parquet.Row) map[string]any {
	var paths []leafPath
	leafPaths(schema, nil, nil, &paths)
	root := map[string]any{}
	row.Range(func(col int, values []parquet.Value) bool {
		p := paths[col]
		idx := map[int]int{} // element index per repetition depth
		for _, v := range values {
			r, d := v.RepetitionLevel(), v.DefinitionLevel()
			if r > 0 {
				idx[r]++
			}
			for k := range idx {
				if k > r {
					idx[k] = 0
				}
			}
			place(root, p, 0, 0, 0, idx, v, d)
		}
		return true
	})
	return unwrap(schema, root).(map[string]any)
}

func place(cur map[string]any, p leafPath, i, dl, rl int, idx map[int]int, v parquet.Value, d int) {
	n, name := p.nodes[i], p.names[i]
	if n.Optional() || n.Repeated() {
		dl++
	}
	if n.Repeated() {
		rl++
		list, _ := cur[name].([]any)
		if list == nil {
			list = []any{}
		}
		if d < dl {
			cur[name] = list
			return
		}
		for len(list) <= idx[rl] {
			if n.Leaf() {
				list = append(list, nil)
			} else {
				list = append(list, map[string]any{})
			}
		}
		cur[name] = list
		if n.Leaf() {
			list[idx[rl]] = leafValue(n, v)
			return
		}
		place(list[idx[rl]].(map[string]any), p, i+1, dl, rl, idx, v, d)
		return
	}
	if d < dl {
		if _, ok := cur[name]; !ok {
			cur[name] = nil
		}
		return
	}
	if n.Leaf() {
		cur[name] = leafValue(n, v)
		return
	}
	child, _ := cur[name].(map[string]any)
	if child == nil {
		child = map[string]any{}
		cur[name] = child
	}
	place(child, p, i+1, dl, rl, idx, v, d)
}

// unwrap turns LIST and MAP groups into lists and maps.
func unwrap(n parquet.Node, v any) any {
	if v == nil || n.Leaf() {
		return v
	}
	lt := logical(n)
	m := v.(map[string]any)
	switch lt.(type) {
	case *format.ListType:
		inner := n.Fields()[0]
		elem := inner.Fields()[0]
		out := []any{}
		for _, e := range m[inner.Name()].([]any) {
			out = append(out, unwrap(elem, e.(map[string]any)[elem.Name()]))
		}
		return out
	case *format.MapType:
		inner := n.Fields()[0]
		kn, vn := inner.Fields()[0], inner.Fields()[1]
		out := map[string]any{}
		for _, e := range m[inner.Name()].([]any) {
			kv := e.(map[string]any)
			out[fmt.Sprint(kv[kn.Name()])] = unwrap(vn, kv[vn.Name()])
		}
		return out
	}
	out := map[string]any{}
	for _, f := range n.Fields() {
		out[f.Name()] = unwrap(f, m[f.Name()])
	}
	return out
}

func leafValue(n parquet.Node, v parquet.Value) any {
	if v.IsNull() {
		return nil
	}
	switch lt := logical(n).(type) {
	case *format.TimestampType:
		if _, micros := lt.Unit.Value.(*format.MicroSeconds); !micros || !lt.IsAdjustedToUTC {
			panic("timestamps must be MICROS, adjusted to UTC")
		}
		return time.UnixMicro(v.Int64()).UTC()
	case *format.DecimalType:
		return new(big.Int).SetBytes(v.ByteArray()).String()
	case *format.StringType:
		return string(v.ByteArray())
	}
	switch n.Type().Kind() {
	case parquet.Boolean:
		return v.Boolean()
	case parquet.Int32:
		return int64(v.Int32())
	case parquet.Int64:
		return v.Int64()
	case parquet.Float:
		return float64(v.Float())
	case parquet.Double:
		return v.Double()
	case parquet.ByteArray:
		return append([]byte{}, v.ByteArray()...)
	}
	panic(fmt.Sprintf("leaf kind %v", n.Type().Kind()))
}

func logical(n parquet.Node) any {
	lt := n.Type().LogicalType()
	if lt == nil {
		return nil
	}
	return lt.Value
}

// expectRow is the row a message must become, by the documented mapping.
func expectRow(m proto.Message) map[string]any { return expectMessage(m.ProtoReflect()) }

func expectMessage(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := string(fd.Name())
		switch {
		case fd.IsList():
			l := m.Get(fd).List()
			vals := []any{}
			for j := range l.Len() {
				vals = append(vals, expectValue(fd, l.Get(j)))
			}
			out[name] = vals
		case fd.IsMap():
			mp := map[string]any{}
			m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
				mp[fmt.Sprint(expectValue(fd.MapKey(), k.Value()))] = expectValue(fd.MapValue(), v)
				return true
			})
			out[name] = mp
		case fd.HasPresence() && !m.Has(fd):
			out[name] = nil
		default:
			out[name] = expectValue(fd, m.Get(fd))
		}
	}
	return out
}

func expectValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName() == timestampName {
			f := v.Message().Descriptor().Fields()
			return time.Unix(v.Message().Get(f.ByNumber(1)).Int(), v.Message().Get(f.ByNumber(2)).Int()).UTC().Truncate(time.Microsecond)
		}
		return expectMessage(v.Message())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(int32(v.Enum()))
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return append([]byte{}, v.Bytes()...)
	case protoreflect.FloatKind:
		return float64(float32(v.Float()))
	case protoreflect.DoubleKind:
		return v.Float()
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return fmt.Sprint(v.Uint())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return int64(v.Uint())
	}
	return v.Int()
}

// sortedKeys is for stable failure messages.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
