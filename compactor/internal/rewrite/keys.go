package rewrite

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// A column path names a top-level column or a field inside struct columns ("context.device.model").
type columnPath struct {
	name    string
	indices []int // field index at each level, from the top
	typ     arrow.DataType
}

// resolvePath finds name in schema; ok is false when a part of it is missing.
func resolvePath(schema *arrow.Schema, name string) (columnPath, bool) {
	parts := strings.Split(name, ".")
	fields := schema.Fields()
	p := columnPath{name: name}
	for i, part := range parts {
		idx := -1
		for j, f := range fields {
			if f.Name == part {
				idx = j
				break
			}
		}
		if idx < 0 {
			return columnPath{}, false
		}
		p.indices = append(p.indices, idx)
		p.typ = fields[idx].Type
		if i < len(parts)-1 {
			st, ok := p.typ.(*arrow.StructType)
			if !ok {
				return columnPath{}, false
			}
			fields = st.Fields()
		}
	}
	return p, true
}

// keyable reports whether values of t can be encoded into an order-preserving key.
func keyable(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY,
		arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64,
		arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT32, arrow.FLOAT64, arrow.BOOL,
		arrow.TIMESTAMP, arrow.DATE32, arrow.DATE64:
		return true
	}
	return false
}

// appendFunc appends the order-preserving encoding of row i of one key column to dst.
type appendFunc func(dst []byte, i int) []byte

// Key bytes compare with bytes.Compare in the order of the values: ascending, nulls last.
const (
	keyValue byte = 0x01
	keyNull  byte = 0x02
)

// encoderFor returns the encoder of path in one record batch.
func encoderFor(rec arrow.RecordBatch, p columnPath) (appendFunc, error) {
	var parents []arrow.Array
	arr := rec.Column(p.indices[0])
	for _, idx := range p.indices[1:] {
		parents = append(parents, arr)
		arr = arr.(*array.Struct).Field(idx)
	}
	value, err := valueEncoder(arr)
	if err != nil {
		return nil, fmt.Errorf("column %s: %w", p.name, err)
	}
	if len(parents) == 0 && arr.NullN() == 0 {
		return func(dst []byte, i int) []byte { return value(append(dst, keyValue), i) }, nil
	}
	return func(dst []byte, i int) []byte {
		for _, par := range parents {
			if par.IsNull(i) {
				return append(dst, keyNull)
			}
		}
		if arr.IsNull(i) {
			return append(dst, keyNull)
		}
		return value(append(dst, keyValue), i)
	}, nil
}

func valueEncoder(arr arrow.Array) (appendFunc, error) {
	switch a := arr.(type) {
	case *array.String:
		return func(dst []byte, i int) []byte { return appendEscaped(dst, a.Value(i)) }, nil
	case *array.LargeString:
		return func(dst []byte, i int) []byte { return appendEscaped(dst, a.Value(i)) }, nil
	case *array.Binary:
		return func(dst []byte, i int) []byte { return appendEscaped(dst, string(a.Value(i))) }, nil
	case *array.LargeBinary:
		return func(dst []byte, i int) []byte { return appendEscaped(dst, string(a.Value(i))) }, nil
	case *array.Int8:
		return func(dst []byte, i int) []byte { return appendInt(dst, int64(a.Value(i))) }, nil
	case *array.Int16:
		return func(dst []byte, i int) []byte { return appendInt(dst, int64(a.Value(i))) }, nil
	case *array.Int32:
		return func(dst []byte, i int) []byte { return appendInt(dst, int64(a.Value(i))) }, nil
	case *array.Int64:
		return func(dst []byte, i int) []byte { return appendInt(dst, a.Value(i)) }, nil
	case *array.Uint8:
		return func(dst []byte, i int) []byte { return binary.BigEndian.AppendUint64(dst, uint64(a.Value(i))) }, nil
	case *array.Uint16:
		return func(dst []byte, i int) []byte { return binary.BigEndian.AppendUint64(dst, uint64(a.Value(i))) }, nil
	case *array.Uint32:
		return func(dst []byte, i int) []byte { return binary.BigEndian.AppendUint64(dst, uint64(a.Value(i))) }, nil
	case *array.Uint64:
		return func(dst []byte, i int) []byte { return binary.BigEndian.AppendUint64(dst, a.Value(i)) }, nil
	case *array.Float32:
		return func(dst []byte, i int) []byte { return appendFloat(dst, float64(a.Value(i))) }, nil
	case *array.Float64:
		return func(dst []byte, i int) []byte { return appendFloat(dst, a.Value(i)) }, nil
	case *array.Boolean:
		return func(dst []byte, i int) []byte {
			if a.Value(i) {
				return append(dst, 1)
			}
			return append(dst, 0)
		}, nil
	case *array.Timestamp:
		return func(dst []byte, i int) []byte { return appendInt(dst, int64(a.Value(i))) }, nil
	case *array.Date32:
		return func(dst []byte, i int) []byte { return appendInt(dst, int64(a.Value(i))) }, nil
	case *array.Date64:
		return func(dst []byte, i int) []byte { return appendInt(dst, int64(a.Value(i))) }, nil
	}
	return nil, fmt.Errorf("type %s cannot be a sort or deduplication key", arr.DataType())
}

// appendEscaped writes s so that encoded strings compare like the strings and no encoding is a
// prefix of another: 0x00 becomes 0x00 0xFF, and 0x00 0x00 ends the string.
func appendEscaped(dst []byte, s string) []byte {
	for {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			dst = append(dst, s...)
			break
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, 0, 0xFF)
		s = s[i+1:]
	}
	return append(dst, 0, 0)
}

func appendInt(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

func appendFloat(dst []byte, f float64) []byte {
	b := math.Float64bits(f)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, b)
}

// keyEncoder encodes the sort key of a row: the sort columns, then the deduplication key, so that
// the order is total for distinct rows.
type keyEncoder struct {
	sort  []columnPath
	dedup dedupKey
}

// rowKeys encodes the keys of every row of one batch.
type rowKeys struct {
	sort  []appendFunc
	dedup dedupRow
}

func (k keyEncoder) bind(rec arrow.RecordBatch) (rowKeys, error) {
	var rk rowKeys
	for _, p := range k.sort {
		f, err := encoderFor(rec, p)
		if err != nil {
			return rowKeys{}, err
		}
		rk.sort = append(rk.sort, f)
	}
	d, err := k.dedup.bind(rec)
	if err != nil {
		return rowKeys{}, err
	}
	rk.dedup = d
	return rk, nil
}

// sortKey appends the sort key of row i, then its deduplication key.
func (rk rowKeys) sortKey(dst []byte, i int) []byte {
	for _, f := range rk.sort {
		dst = f(dst, i)
	}
	return rk.dedup.appendKey(dst, i)
}

// dedupKey identifies a row: the event's own id where the schema has one and the row carries it,
// else the fallback columns (the request guid and the event's index in the request).
type dedupKey struct {
	id       *columnPath
	fallback []columnPath
}

type dedupRow struct {
	id       *array.String
	fallback []appendFunc
}

func (d dedupKey) bind(rec arrow.RecordBatch) (dedupRow, error) {
	var r dedupRow
	if d.id != nil {
		s, ok := rec.Column(d.id.indices[0]).(*array.String)
		if !ok {
			return dedupRow{}, fmt.Errorf("id column %s: type %s, want a string", d.id.name, rec.Column(d.id.indices[0]).DataType())
		}
		r.id = s
	}
	for _, p := range d.fallback {
		f, err := encoderFor(rec, p)
		if err != nil {
			return dedupRow{}, err
		}
		r.fallback = append(r.fallback, f)
	}
	return r, nil
}

// appendKey appends the row's identity: 0x01 and the id, or 0x02 and the fallback columns.
func (r dedupRow) appendKey(dst []byte, i int) []byte {
	if r.id != nil && r.id.IsValid(i) {
		if id := r.id.Value(i); id != "" {
			return appendEscaped(append(dst, 0x01), id)
		}
	}
	dst = append(dst, 0x02)
	for _, f := range r.fallback {
		dst = f(dst, i)
	}
	return dst
}

// hash128 is a 128-bit hash of b: two independently seeded 64-bit hashes, so that the chance of
// two distinct keys colliding within one partition is negligible (about n²/2¹²⁹).
type hasher struct{ a, b maphash.Seed }

func newHasher() hasher { return hasher{maphash.MakeSeed(), maphash.MakeSeed()} }

func (h hasher) sum(b []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(h.a, b), maphash.Bytes(h.b, b)}
}
