package lakewriter

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/clickstream/clickstream/services/lake"
)

// System columns follow the message's fields in every table (DESIGN.md, "Lake contract").
const (
	ColReceivedAt     = "_received_at"     // timestamp: when the collector received the event
	ColReqGUID        = "_req_guid"        // string: the batch's req_guid
	ColEventIndex     = "_event_index"     // int: the event's index in its batch; NULL if the header is missing
	ColConnGroup      = "_conn_group"      // string: the connection group
	ColKafkaPartition = "_kafka_partition" // int: the Kafka partition of the record
	ColKafkaOffset    = "_kafka_offset"    // bigint: the Kafka offset of the record
	// ColReplayedFromDLQ is true on an event that `clickstream dlq replay` moved from the
	// dead-letter topic (header replayed_from_dlq = "true"), false otherwise. Event tables only:
	// dead_letters rows are the dead letters themselves.
	ColReplayedFromDLQ = "_replayed_from_dlq" // boolean
)

// Schema is a table's schema derived from a protobuf message, in the two forms the lake needs:
// the Hive columns the metastore registers and the Parquet schema of the files, plus a compiled
// converter from messages to Parquet rows. The mapping (documented in the README's lake section):
//
//	bool → boolean · int32, sint32, sfixed32 → int · int64, sint64, sfixed64 → bigint ·
//	uint32, fixed32 → bigint · uint64, fixed64 → decimal(20,0) (every uint64 fits, none wraps) ·
//	float → float · double → double · string → string · bytes → binary · enum → string (the value
//	name; an unknown number as its decimal text) · google.protobuf.Timestamp → timestamp (Parquet
//	INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true), which Hive, Trino and Spark read as timestamp) ·
//	message → struct (NULL when unset) · repeated → array (empty, never NULL) · map → map ·
//	proto3 optional and oneof members → nullable (NULL when unset); other scalars are required
//	and hold the proto default when unset.
type Schema struct {
	Table   string
	Message protoreflect.MessageDescriptor
	// Columns are the Hive data columns: the message's fields, then the system columns.
	Columns []lake.Column
	// Parquet is the Parquet schema of the table's files (columns in the same order).
	Parquet *parquet.Schema
	// IDField is the event's own id field as its schema declares it (clickstream.v1.event
	// id_field), "" when it declares none. Files carry it for the compactor's deduplication.
	IDField string
	// Version is the schema version the table schema was derived from (TableSchemas); files
	// carry it in their metadata.
	Version uint32

	root       *node
	nLeaves    int
	nSys       int // system columns at the end of root.children
	newMessage func() proto.Message
	wireOK     bool // rows can be built from the wire format (wirerow.go)
	// Leaf column index of each system column; replayed is -1 in dead_letters, which has none.
	sys struct{ receivedAt, reqGUID, eventIndex, connGroup, partition, offset, replayed int }
}

// node is one field of the schema: how its values become Parquet leaf values.
type node struct {
	name     string
	fd       protoreflect.FieldDescriptor // nil for the root and for list elements / map keys and values
	kind     nodeKind
	optional bool // adds a definition level: NULL when absent
	children []*node
	first    int // first leaf column index under this node
	leaves   int // number of leaf columns under this node
	repLevel int // for lists and maps: the repetition level of their repeated group
	scalar   scalarKind
	enum     protoreflect.EnumDescriptor
	wire     *wireInfo // for building rows from the wire format (wirerow.go)
}

type nodeKind int

const (
	kindLeaf nodeKind = iota
	kindGroup
	kindList
	kindMap
)

type scalarKind int

const (
	scBool scalarKind = iota
	scInt32
	scInt64
	scUint32
	scUint64
	scFloat
	scDouble
	scString
	scBytes
	scEnum
	scTimestamp
)

const timestampName = "google.protobuf.Timestamp"

// NewSchema derives the schema of a table from its message. It fails on what a Hive table
// cannot hold: recursive messages, and field names that clash with system or partition columns.
// Every table but lake.DeadLettersTable is an event table and has the _replayed_from_dlq column.
func NewSchema(table string, md protoreflect.MessageDescriptor) (*Schema, error) {
	s := &Schema{Table: table, Message: md}
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil && mt.Descriptor() == md {
		s.newMessage = func() proto.Message { return mt.New().Interface() }
	} else {
		s.newMessage = func() proto.Message { return dynamicpb.NewMessage(md) }
	}
	b := &builder{seen: map[protoreflect.FullName]bool{}}
	root := &node{kind: kindGroup}
	b.seen[md.FullName()] = true
	var hiveCols []lake.Column
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := string(fd.Name())
		if strings.HasPrefix(name, "_") || name == lake.PartitionDate || name == lake.PartitionHour {
			return nil, fmt.Errorf("%s: field %q clashes with the lake's system or partition columns", md.FullName(), name)
		}
		n, hive, err := b.field(fd, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", md.FullName(), err)
		}
		root.children = append(root.children, n)
		hiveCols = append(hiveCols, lake.Column{Name: name, Type: hive, Comment: comment(fd)})
	}
	type sysColumn struct {
		name, hive, comment string
		n                   *node
		col                 *int // where its leaf index goes
	}
	sys := []sysColumn{
		{ColReceivedAt, "timestamp", "when the collector received the event (UTC)", &node{kind: kindLeaf, scalar: scTimestamp}, &s.sys.receivedAt},
		{ColReqGUID, "string", "req_guid of the batch the event came in", &node{kind: kindLeaf, scalar: scString}, &s.sys.reqGUID},
		{ColEventIndex, "int", "index of the event in its batch", &node{kind: kindLeaf, scalar: scInt32, optional: true}, &s.sys.eventIndex},
		{ColConnGroup, "string", "connection group of the sender", &node{kind: kindLeaf, scalar: scString}, &s.sys.connGroup},
		{ColKafkaPartition, "int", "Kafka partition of the record", &node{kind: kindLeaf, scalar: scInt32}, &s.sys.partition},
		{ColKafkaOffset, "bigint", "Kafka offset of the record", &node{kind: kindLeaf, scalar: scInt64}, &s.sys.offset},
	}
	s.sys.replayed = -1
	if table != lake.DeadLettersTable {
		sys = append(sys, sysColumn{ColReplayedFromDLQ, "boolean", "true when a DLQ replay moved the event here after a schema fix", &node{kind: kindLeaf, scalar: scBool}, &s.sys.replayed})
	}
	for _, c := range sys {
		c.n.name = c.name
		root.children = append(root.children, c.n)
		hiveCols = append(hiveCols, lake.Column{Name: c.name, Type: c.hive, Comment: c.comment})
	}
	s.nSys = len(sys)
	s.nLeaves = assignColumns(root, 0)
	for _, c := range sys {
		*c.col = c.n.first
	}
	prepareWire(root, protoreflect.MessageKind)
	s.wireOK = wireSupports(md)
	s.root = root
	s.Columns = hiveCols
	s.Parquet = parquet.NewSchema(string(md.Name()), parquetNode(root))
	if got := len(s.Parquet.Columns()); got != s.nLeaves {
		return nil, fmt.Errorf("%s: parquet schema has %d leaf columns, converter %d", md.FullName(), got, s.nLeaves)
	}
	return s, nil
}

func comment(fd protoreflect.FieldDescriptor) string {
	loc := fd.ParentFile().SourceLocations().ByDescriptor(fd)
	return strings.TrimSpace(strings.ReplaceAll(loc.LeadingComments, "\n", " "))
}

type builder struct {
	seen map[protoreflect.FullName]bool // messages on the current path, to refuse recursion
}

// field builds the node of a message field and its Hive type. repDepth is the number of
// repeated groups above it.
func (b *builder) field(fd protoreflect.FieldDescriptor, repDepth int) (*node, string, error) {
	name := string(fd.Name())
	switch {
	case fd.IsMap():
		k, khive, err := b.value(fd.MapKey(), repDepth+1)
		if err != nil {
			return nil, "", err
		}
		v, vhive, err := b.value(fd.MapValue(), repDepth+1)
		if err != nil {
			return nil, "", err
		}
		k.name, v.name = "key", "value"
		return &node{name: name, fd: fd, kind: kindMap, children: []*node{k, v}, repLevel: repDepth + 1},
			"map<" + khive + "," + vhive + ">", nil
	case fd.IsList():
		e, ehive, err := b.value(fd, repDepth+1)
		if err != nil {
			return nil, "", err
		}
		e.name = "element"
		return &node{name: name, fd: fd, kind: kindList, children: []*node{e}, repLevel: repDepth + 1},
			"array<" + ehive + ">", nil
	}
	n, hive, err := b.value(fd, repDepth)
	if err != nil {
		return nil, "", err
	}
	n.name, n.fd = name, fd
	n.optional = fd.HasPresence() // messages, proto3 optional, oneof members
	return n, hive, nil
}

// value builds the node of one value of fd's type (a singular field, a list element, a map key
// or value); the caller sets its name and whether it is optional.
func (b *builder) value(fd protoreflect.FieldDescriptor, repDepth int) (*node, string, error) {
	leaf := func(sc scalarKind, hive string) (*node, string, error) {
		return &node{kind: kindLeaf, scalar: sc}, hive, nil
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return leaf(scBool, "boolean")
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return leaf(scInt32, "int")
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return leaf(scInt64, "bigint")
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return leaf(scUint32, "bigint")
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return leaf(scUint64, "decimal(20,0)")
	case protoreflect.FloatKind:
		return leaf(scFloat, "float")
	case protoreflect.DoubleKind:
		return leaf(scDouble, "double")
	case protoreflect.StringKind:
		return leaf(scString, "string")
	case protoreflect.BytesKind:
		return leaf(scBytes, "binary")
	case protoreflect.EnumKind:
		n := &node{kind: kindLeaf, scalar: scEnum, enum: fd.Enum()}
		return n, "string", nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		if md.FullName() == timestampName {
			return leaf(scTimestamp, "timestamp")
		}
		if b.seen[md.FullName()] {
			return nil, "", fmt.Errorf("field %s: recursive message %s cannot be a Hive column", fd.FullName(), md.FullName())
		}
		b.seen[md.FullName()] = true
		defer delete(b.seen, md.FullName())
		g := &node{kind: kindGroup}
		var parts []string
		fields := md.Fields()
		for i := range fields.Len() {
			child, hive, err := b.field(fields.Get(i), repDepth)
			if err != nil {
				return nil, "", err
			}
			g.children = append(g.children, child)
			parts = append(parts, child.name+":"+hive)
		}
		if len(parts) == 0 {
			return nil, "", fmt.Errorf("field %s: message %s has no fields; Hive has no empty struct", fd.FullName(), md.FullName())
		}
		return g, "struct<" + strings.Join(parts, ",") + ">", nil
	}
	return nil, "", fmt.Errorf("field %s: unsupported kind %s", fd.FullName(), fd.Kind())
}

// assignColumns numbers the leaves depth-first, the order Parquet numbers columns in.
func assignColumns(n *node, next int) int {
	n.first = next
	if n.kind == kindLeaf {
		n.leaves = 1
		return next + 1
	}
	for _, c := range n.children {
		next = assignColumns(c, next)
	}
	n.leaves = next - n.first
	return next
}

// parquetNode turns the schema tree into Parquet nodes, keeping the fields in message order
// (parquet.Group would sort them by name).
func parquetNode(n *node) parquet.Node {
	var pn parquet.Node
	switch n.kind {
	case kindLeaf:
		pn = parquetLeaf(n.scalar)
	case kindGroup:
		g := orderedGroup{}
		for _, c := range n.children {
			g = append(g, namedField{Node: parquetNode(c), name: c.name})
		}
		pn = g
	case kindList:
		pn = parquet.List(parquetNode(n.children[0]))
	case kindMap:
		pn = parquet.Map(parquetNode(n.children[0]), parquetNode(n.children[1]))
	}
	if n.optional {
		return parquet.Optional(pn)
	}
	return pn
}

func parquetLeaf(sc scalarKind) parquet.Node {
	switch sc {
	case scBool:
		return parquet.Leaf(parquet.BooleanType)
	case scInt32:
		return parquet.Leaf(parquet.Int32Type)
	case scInt64, scUint32:
		return parquet.Leaf(parquet.Int64Type)
	case scUint64:
		return parquet.Decimal(0, 20, parquet.FixedLenByteArrayType(9))
	case scFloat:
		return parquet.Leaf(parquet.FloatType)
	case scDouble:
		return parquet.Leaf(parquet.DoubleType)
	case scString, scEnum:
		return parquet.String()
	case scBytes:
		return parquet.Leaf(parquet.ByteArrayType)
	case scTimestamp:
		return parquet.TimestampAdjusted(parquet.Microsecond, true)
	}
	panic(fmt.Sprintf("lakewriter: scalar kind %d", sc))
}

// orderedGroup is a Parquet group whose fields keep the order they are given in.
type orderedGroup []parquet.Field

type namedField struct {
	parquet.Node
	name string
}

func (f namedField) Name() string                           { return f.name }
func (f namedField) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return parquet.NewSchema("group", g).String() }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

// Row is the system part of one row: what the record, not the message, says.
type sysValues struct {
	receivedAt time.Time
	reqGUID    string
	eventIndex int32
	hasIndex   bool
	connGroup  string
	partition  int32
	offset     int64
	replayed   bool // the replayed_from_dlq header is "true"
}

// rowBuilder turns messages into Parquet rows with repetition and definition levels computed
// from the compiled schema tree, without reflection on Go types.
type rowBuilder struct {
	s    *Schema
	cols [][]parquet.Value
	row  parquet.Row

	occ     []occurrence // the wire path's scratch: fields of the messages being scanned
	entries []mapEntry   // and of a map being sorted
}

func (s *Schema) newRowBuilder() *rowBuilder {
	return &rowBuilder{s: s, cols: make([][]parquet.Value, s.nLeaves)}
}

// rowOf returns the Parquet row of the record encoded in data: from the wire format where the wire
// path handles it (wirerow.go), else by unmarshalling the message and walking it. An error means
// the bytes do not decode as the table's message. The row is reused by the next call.
func (b *rowBuilder) rowOf(data []byte, sys sysValues) (parquet.Row, error) {
	if row, ok := b.buildWire(data, sys); ok {
		return row, nil
	}
	msg := b.s.newMessage()
	if err := proto.Unmarshal(data, msg); err != nil {
		return nil, err
	}
	return b.build(msg.ProtoReflect(), sys), nil
}

// build returns the row of m with the system values; the row is reused by the next call.
func (b *rowBuilder) build(m protoreflect.Message, sys sysValues) parquet.Row {
	for i := range b.cols {
		b.cols[i] = b.cols[i][:0]
	}
	root := b.s.root
	nFields := len(root.children) - b.s.nSys
	for _, c := range root.children[:nFields] {
		b.field(c, m, 0, 0)
	}
	return b.finishRow(sys)
}

// finishRow adds the system values and assembles the row from the columns.
func (b *rowBuilder) finishRow(sys sysValues) parquet.Row {
	put := func(col int, v parquet.Value) { b.cols[col] = append(b.cols[col], v.Level(0, 0, col)) }
	put(b.s.sys.receivedAt, parquet.Int64Value(sys.receivedAt.UnixMicro()))
	put(b.s.sys.reqGUID, parquet.ByteArrayValue(stringBytes(sys.reqGUID)))
	if sys.hasIndex {
		b.cols[b.s.sys.eventIndex] = append(b.cols[b.s.sys.eventIndex], parquet.Int32Value(sys.eventIndex).Level(0, 1, b.s.sys.eventIndex))
	} else {
		put(b.s.sys.eventIndex, parquet.NullValue())
	}
	put(b.s.sys.connGroup, parquet.ByteArrayValue(stringBytes(sys.connGroup)))
	put(b.s.sys.partition, parquet.Int32Value(sys.partition))
	put(b.s.sys.offset, parquet.Int64Value(sys.offset))
	if b.s.sys.replayed >= 0 {
		put(b.s.sys.replayed, parquet.BooleanValue(sys.replayed))
	}
	b.row = b.row[:0]
	for _, c := range b.cols {
		b.row = append(b.row, c...)
	}
	return b.row
}

func (b *rowBuilder) nulls(n *node, rep, def int) {
	for c := n.first; c < n.first+n.leaves; c++ {
		b.cols[c] = append(b.cols[c], parquet.NullValue().Level(rep, def, c))
	}
}

// field writes field n of message m.
func (b *rowBuilder) field(n *node, m protoreflect.Message, rep, def int) {
	switch n.kind {
	case kindList:
		b.list(n, m.Get(n.fd).List(), rep, def)
		return
	case kindMap:
		b.mapField(n, m.Get(n.fd).Map(), rep, def)
		return
	}
	if n.optional && !m.Has(n.fd) {
		b.nulls(n, rep, def)
		return
	}
	b.value(n, m.Get(n.fd), rep, def)
}

// value writes one present value of node n.
func (b *rowBuilder) value(n *node, v protoreflect.Value, rep, def int) {
	if n.optional {
		def++
	}
	switch n.kind {
	case kindLeaf:
		b.cols[n.first] = append(b.cols[n.first], scalarValue(n, v).Level(rep, def, n.first))
	case kindGroup:
		msg := v.Message()
		for _, c := range n.children {
			b.field(c, msg, rep, def)
		}
	}
}

func (b *rowBuilder) list(n *node, l protoreflect.List, rep, def int) {
	if l.Len() == 0 {
		b.nulls(n, rep, def) // an empty list: defined up to the list group
		return
	}
	elem := n.children[0]
	for i := range l.Len() {
		r := rep
		if i > 0 {
			r = n.repLevel
		}
		b.value(elem, l.Get(i), r, def+1)
	}
}

func (b *rowBuilder) mapField(n *node, mp protoreflect.Map, rep, def int) {
	if mp.Len() == 0 {
		b.nulls(n, rep, def)
		return
	}
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	sort.Slice(keys, func(i, j int) bool { return lessMapKey(keys[i], keys[j]) })
	kn, vn := n.children[0], n.children[1]
	for i, k := range keys {
		r := rep
		if i > 0 {
			r = n.repLevel
		}
		b.value(kn, k.Value(), r, def+1)
		b.value(vn, mp.Get(k), r, def+1)
	}
}

func lessMapKey(a, b protoreflect.MapKey) bool {
	switch a.Interface().(type) {
	case string:
		return a.String() < b.String()
	case bool:
		return !a.Bool() && b.Bool()
	case int32, int64:
		return a.Int() < b.Int()
	default:
		return a.Uint() < b.Uint()
	}
}

// stringBytes views s as bytes without copying. The row's values are copied into the column
// buffers by WriteRows while the message (which owns s) is alive, and nothing writes to them.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func scalarValue(n *node, v protoreflect.Value) parquet.Value {
	switch n.scalar {
	case scBool:
		return parquet.BooleanValue(v.Bool())
	case scInt32:
		return parquet.Int32Value(int32(v.Int()))
	case scInt64:
		return parquet.Int64Value(v.Int())
	case scUint32:
		return parquet.Int64Value(int64(v.Uint()))
	case scUint64:
		var buf [9]byte
		binary.BigEndian.PutUint64(buf[1:], v.Uint())
		return parquet.FixedLenByteArrayValue(buf[:])
	case scFloat:
		return parquet.FloatValue(float32(v.Float()))
	case scDouble:
		return parquet.DoubleValue(v.Float())
	case scString:
		return parquet.ByteArrayValue(stringBytes(v.String()))
	case scBytes:
		return parquet.ByteArrayValue(v.Bytes())
	case scEnum:
		if ev := n.enum.Values().ByNumber(v.Enum()); ev != nil {
			return parquet.ByteArrayValue([]byte(ev.Name()))
		}
		return parquet.ByteArrayValue([]byte(fmt.Sprint(int32(v.Enum()))))
	case scTimestamp:
		msg := v.Message()
		fields := msg.Descriptor().Fields()
		sec := msg.Get(fields.ByNumber(1)).Int()
		nanos := msg.Get(fields.ByNumber(2)).Int()
		return parquet.Int64Value(sec*1_000_000 + nanos/1000)
	}
	panic(fmt.Sprintf("lakewriter: scalar kind %d", n.scalar))
}
