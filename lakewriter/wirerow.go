package lakewriter

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The wire path builds a record's Parquet row straight from its protobuf bytes, without
// proto.Unmarshal and protoreflect: the message is scanned once per nesting level and each field's
// value becomes a Parquet value in schema order. It is the lakewriter's hot path; the reflective
// path (rowBuilder.build on an unmarshalled message) stays the reference. Whatever the wire path
// does not handle exactly as proto.Unmarshal would (a singular message sent twice, which proto
// merges; a field with an unexpected wire type, which proto keeps as unknown; invalid UTF-8, which
// proto rejects; malformed input) makes it give up, and the record takes the reflective path.
// TestWireRowMatchesReflection and FuzzWireRow hold the two paths to the same rows.

// wireSupports reports whether the wire path can build rows of md: every message reachable from it
// is proto3, whose semantics it mirrors (open enums, no required fields, no groups, no
// extensions). Schemas of other syntaxes always take the reflective path.
func wireSupports(md protoreflect.MessageDescriptor) bool {
	seen := map[protoreflect.FullName]bool{}
	var ok func(md protoreflect.MessageDescriptor) bool
	ok = func(md protoreflect.MessageDescriptor) bool {
		if seen[md.FullName()] {
			return true
		}
		seen[md.FullName()] = true
		if md.Syntax() != protoreflect.Proto3 {
			return false
		}
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Kind() == protoreflect.GroupKind || fd.Cardinality() == protoreflect.Required {
				return false
			}
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if fd.Message() != nil && !ok(fd.Message()) {
				return false
			}
		}
		return true
	}
	return ok(md)
}

// wireInfo is what the wire path needs of a node, prepared once per schema.
type wireInfo struct {
	kind   protoreflect.Kind // of a leaf: how its wire values decode
	byNum  map[protowire.Number]int32
	oneof  int // index of the non-synthetic oneof the field belongs to within its message; -1 if none
	nOneof int // of a group: how many oneofs its message has
}

// prepareWire fills the wire information of n's subtree. kind is the protobuf kind of n's values
// (for a list element or a map key or value, the kind its parent's descriptor gives).
func prepareWire(n *node, kind protoreflect.Kind) {
	n.wire = &wireInfo{kind: kind, oneof: -1}
	if n.fd != nil {
		if o := n.fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
			n.wire.oneof = o.Index()
		}
	}
	switch n.kind {
	case kindList:
		prepareWire(n.children[0], n.fd.Kind())
	case kindMap:
		prepareWire(n.children[0], n.fd.MapKey().Kind())
		prepareWire(n.children[1], n.fd.MapValue().Kind())
	case kindGroup:
		n.wire.byNum = map[protowire.Number]int32{}
		for i, c := range n.children {
			if c.fd == nil {
				continue // the root's system columns: not on the wire
			}
			prepareWire(c, c.fd.Kind())
			n.wire.byNum[c.fd.Number()] = int32(i)
			n.wire.nOneof = max(n.wire.nOneof, c.wire.oneof+1)
		}
	}
}

// occurrence is one field of a message as it appears on the wire.
type occurrence struct {
	child int32 // index of the field's node among its message's children; -1: ignored
	typ   protowire.Type
	num   uint64 // varint, fixed32 or fixed64 value
	b     []byte // bytes value
}

// consumeField reads one field (tag and value) from p: raw is its value's encoding, rest what
// follows. ok is false for malformed input and for field numbers proto.Unmarshal refuses.
func consumeField(p []byte) (num protowire.Number, typ protowire.Type, raw, rest []byte, ok bool) {
	num, typ, tl := protowire.ConsumeTag(p)
	if tl < 0 || !num.IsValid() {
		return 0, 0, nil, nil, false
	}
	vl := protowire.ConsumeFieldValue(num, typ, p[tl:])
	if vl < 0 {
		return 0, 0, nil, nil, false
	}
	return num, typ, p[tl : tl+vl], p[tl+vl:], true
}

// decodeValue decodes a field's value from raw, its encoding as consumeField returns it; false for
// group wire types, which the wire path leaves to proto.
func decodeValue(typ protowire.Type, raw []byte) (occurrence, bool) {
	o := occurrence{typ: typ}
	switch typ {
	case protowire.VarintType:
		o.num, _ = protowire.ConsumeVarint(raw)
	case protowire.Fixed32Type:
		v, _ := protowire.ConsumeFixed32(raw)
		o.num = uint64(v)
	case protowire.Fixed64Type:
		o.num, _ = protowire.ConsumeFixed64(raw)
	case protowire.BytesType:
		o.b, _ = protowire.ConsumeBytes(raw)
	default:
		return o, false
	}
	return o, true
}

// errWireFallback means: take the reflective path for this record.
var errWireFallback = fmt.Errorf("lakewriter: record needs the reflective path")

// buildWire returns the row of the message encoded in data, or false when the record must take
// the reflective path. The row is reused by the next call.
func (b *rowBuilder) buildWire(data []byte, sys sysValues) (parquet.Row, bool) {
	if !b.s.wireOK {
		return nil, false
	}
	for i := range b.cols {
		b.cols[i] = b.cols[i][:0]
	}
	b.occ = b.occ[:0]
	nFields := len(b.s.root.children) - b.s.nSys
	if err := b.wireMessage(b.s.root, data, nFields, 0, 0); err != nil {
		return nil, false
	}
	return b.finishRow(sys), true
}

// wireMessage scans one message of group g and writes its first n fields.
func (b *rowBuilder) wireMessage(g *node, data []byte, n, rep, def int) error {
	start := len(b.occ)
	defer func() { b.occ = b.occ[:start] }()
	var lastOneof [8]int32
	if g.wire.nOneof > len(lastOneof) {
		return errWireFallback
	}
	for len(data) > 0 {
		num, typ, raw, rest, ok := consumeField(data)
		if !ok {
			return errWireFallback
		}
		data = rest
		child, known := g.wire.byNum[num]
		if !known {
			continue // an unknown field: proto keeps it aside, the table has no column for it
		}
		o, ok := decodeValue(typ, raw)
		if !ok {
			return errWireFallback // groups
		}
		o.child = child
		if oi := g.children[child].wire.oneof; oi >= 0 {
			lastOneof[oi] = child + 1 // the last member set wins; 0: none
		}
		b.occ = append(b.occ, o)
	}
	end := len(b.occ)
	// Members of a oneof other than the last one set are cleared, as proto.Unmarshal does.
	for i := start; i < end; i++ {
		if oi := g.children[b.occ[i].child].wire.oneof; oi >= 0 && lastOneof[oi] != b.occ[i].child+1 {
			b.occ[i].child = -1
		}
	}
	for ci, c := range g.children[:n] {
		if err := b.wireField(c, int32(ci), start, end, rep, def); err != nil {
			return err
		}
	}
	return nil
}

// wireField writes field c (child ci) from the occurrences b.occ[start:end] of its message.
func (b *rowBuilder) wireField(c *node, ci int32, start, end, rep, def int) error {
	switch c.kind {
	case kindList:
		return b.wireList(c, ci, start, end, rep, def)
	case kindMap:
		return b.wireMap(c, ci, start, end, rep, def)
	}
	last, count := -1, 0
	for i := start; i < end; i++ {
		if b.occ[i].child == ci {
			last, count = i, count+1
		}
	}
	if last < 0 {
		if c.optional {
			b.nulls(c, rep, def)
			return nil
		}
		return b.wireValue(c, occurrence{typ: wireTypeOf(c.wire.kind)}, rep, def)
	}
	if count > 1 && (c.kind == kindGroup || c.scalar == scTimestamp) {
		return errWireFallback // proto merges a singular message sent twice
	}
	return b.wireValue(c, b.occ[last], rep, def)
}

// wireValue writes one present value of node n (as rowBuilder.value).
func (b *rowBuilder) wireValue(n *node, o occurrence, rep, def int) error {
	if n.optional {
		def++
	}
	switch n.kind {
	case kindLeaf:
		v, err := wireScalar(n, o)
		if err != nil {
			return err
		}
		b.cols[n.first] = append(b.cols[n.first], v.Level(rep, def, n.first))
		return nil
	case kindGroup:
		if o.typ != protowire.BytesType {
			return errWireFallback
		}
		return b.wireMessage(n, o.b, len(n.children), rep, def)
	}
	return errWireFallback
}

func (b *rowBuilder) wireList(n *node, ci int32, start, end, rep, def int) error {
	elem := n.children[0]
	packable := wireTypeOf(elem.wire.kind) != protowire.BytesType
	count := 0
	emit := func(o occurrence) error {
		r := rep
		if count > 0 {
			r = n.repLevel
		}
		count++
		return b.wireValue(elem, o, r, def+1)
	}
	for i := start; i < end; i++ {
		o := b.occ[i]
		if o.child != ci {
			continue
		}
		if packable && o.typ == protowire.BytesType {
			for p := o.b; len(p) > 0; {
				v, l := consumePacked(elem.wire.kind, p)
				if l < 0 {
					return errWireFallback
				}
				p = p[l:]
				if err := emit(v); err != nil {
					return err
				}
			}
			continue
		}
		if err := emit(o); err != nil {
			return err
		}
	}
	if count == 0 {
		b.nulls(n, rep, def) // an empty list: defined up to the list group
	}
	return nil
}

// consumePacked reads one value of a packed repeated field.
func consumePacked(kind protoreflect.Kind, p []byte) (occurrence, int) {
	switch wireTypeOf(kind) {
	case protowire.VarintType:
		v, l := protowire.ConsumeVarint(p)
		return occurrence{typ: protowire.VarintType, num: v}, l
	case protowire.Fixed32Type:
		v, l := protowire.ConsumeFixed32(p)
		return occurrence{typ: protowire.Fixed32Type, num: uint64(v)}, l
	case protowire.Fixed64Type:
		v, l := protowire.ConsumeFixed64(p)
		return occurrence{typ: protowire.Fixed64Type, num: v}, l
	}
	return occurrence{}, -1
}

// mapEntry is one decoded entry of a map field.
type mapEntry struct{ key, value occurrence }

func (b *rowBuilder) wireMap(n *node, ci int32, start, end, rep, def int) error {
	kn, vn := n.children[0], n.children[1]
	entries := b.entries[:0]
	for i := start; i < end; i++ {
		o := b.occ[i]
		if o.child != ci {
			continue
		}
		if o.typ != protowire.BytesType {
			return errWireFallback
		}
		e := mapEntry{key: occurrence{typ: wireTypeOf(kn.wire.kind)}, value: occurrence{typ: wireTypeOf(vn.wire.kind)}}
		valueSeen := false
		for p := o.b; len(p) > 0; {
			num, typ, raw, rest, ok := consumeField(p)
			if !ok {
				return errWireFallback
			}
			p = rest
			var target *occurrence
			switch num {
			case 1:
				target = &e.key
			case 2:
				if valueSeen && (vn.kind == kindGroup || vn.scalar == scTimestamp) {
					return errWireFallback // merged
				}
				target, valueSeen = &e.value, true
			default:
				continue
			}
			if typ != target.typ {
				return errWireFallback
			}
			*target, _ = decodeValue(typ, raw)
		}
		if kn.wire.kind == protoreflect.StringKind && !utf8.Valid(e.key.b) {
			return errWireFallback
		}
		entries = append(entries, e)
	}
	b.entries = entries
	if len(entries) == 0 {
		b.nulls(n, rep, def)
		return nil
	}
	// Sorted by key as the reflective path sorts; of equal keys the last one sent wins.
	slices.SortStableFunc(entries, func(x, y mapEntry) int { return compareKeys(kn.wire.kind, x.key, y.key) })
	first := true
	for i, e := range entries {
		if i+1 < len(entries) && compareKeys(kn.wire.kind, e.key, entries[i+1].key) == 0 {
			continue
		}
		r := rep
		if !first {
			r = n.repLevel
		}
		first = false
		if err := b.wireValue(kn, e.key, r, def+1); err != nil {
			return err
		}
		if err := b.wireValue(vn, e.value, r, def+1); err != nil {
			return err
		}
	}
	return nil
}

// compareKeys orders map keys as lessMapKey does on their decoded values.
func compareKeys(kind protoreflect.Kind, x, y occurrence) int {
	switch kind {
	case protoreflect.StringKind:
		return bytes.Compare(x.b, y.b)
	case protoreflect.BoolKind:
		return cmp.Compare(boolInt(x.num != 0), boolInt(y.num != 0))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return cmp.Compare(wireUint(kind, x.num), wireUint(kind, y.num))
	default:
		return cmp.Compare(wireInt(kind, x.num), wireInt(kind, y.num))
	}
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// wireTypeOf is the wire type a singular value of kind is encoded with.
func wireTypeOf(kind protoreflect.Kind) protowire.Type {
	switch kind {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.VarintType
}

// wireInt is a signed integer field's value as protobuf defines it for kind.
func wireInt(kind protoreflect.Kind, v uint64) int64 {
	switch kind {
	case protoreflect.Int32Kind, protoreflect.EnumKind:
		return int64(int32(v))
	case protoreflect.Sint32Kind:
		return int64(int32(protowire.DecodeZigZag(v & math.MaxUint32)))
	case protoreflect.Sfixed32Kind:
		return int64(int32(uint32(v)))
	case protoreflect.Sint64Kind:
		return protowire.DecodeZigZag(v)
	}
	return int64(v) // int64, sfixed64
}

// wireUint is an unsigned integer field's value as protobuf defines it for kind.
func wireUint(kind protoreflect.Kind, v uint64) uint64 {
	if kind == protoreflect.Uint32Kind || kind == protoreflect.Fixed32Kind {
		return uint64(uint32(v))
	}
	return v
}

// wireScalar converts one leaf value as scalarValue does.
func wireScalar(n *node, o occurrence) (parquet.Value, error) {
	kind := n.wire.kind
	if o.typ != wireTypeOf(kind) {
		return parquet.Value{}, errWireFallback // proto keeps a mistyped field as unknown
	}
	switch n.scalar {
	case scBool:
		return parquet.BooleanValue(o.num != 0), nil
	case scInt32:
		return parquet.Int32Value(int32(wireInt(kind, o.num))), nil
	case scInt64:
		return parquet.Int64Value(wireInt(kind, o.num)), nil
	case scUint32:
		return parquet.Int64Value(int64(wireUint(kind, o.num))), nil
	case scUint64:
		var buf [9]byte
		binary.BigEndian.PutUint64(buf[1:], o.num)
		return parquet.FixedLenByteArrayValue(buf[:]), nil
	case scFloat:
		return parquet.FloatValue(math.Float32frombits(uint32(o.num))), nil
	case scDouble:
		return parquet.DoubleValue(math.Float64frombits(o.num)), nil
	case scString:
		if !utf8.Valid(o.b) {
			return parquet.Value{}, errWireFallback // proto.Unmarshal refuses it
		}
		return parquet.ByteArrayValue(o.b), nil
	case scBytes:
		return parquet.ByteArrayValue(o.b), nil
	case scEnum:
		num := protoreflect.EnumNumber(int32(o.num))
		if ev := n.enum.Values().ByNumber(num); ev != nil {
			return parquet.ByteArrayValue(stringBytes(string(ev.Name()))), nil
		}
		return parquet.ByteArrayValue([]byte(strconv.Itoa(int(num)))), nil
	case scTimestamp:
		var sec, nanos int64
		for p := o.b; len(p) > 0; {
			num, typ, raw, rest, ok := consumeField(p)
			if !ok {
				return parquet.Value{}, errWireFallback
			}
			p = rest
			if num != 1 && num != 2 {
				continue
			}
			if typ != protowire.VarintType {
				return parquet.Value{}, errWireFallback
			}
			v, _ := protowire.ConsumeVarint(raw)
			if num == 1 {
				sec = int64(v)
			} else {
				nanos = int64(int32(v))
			}
		}
		return parquet.Int64Value(sec*1_000_000 + nanos/1000), nil
	}
	return parquet.Value{}, errWireFallback
}
