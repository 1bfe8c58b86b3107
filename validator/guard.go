package validator

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// hyperpb v0.1.3 is not memory-safe on every input: FuzzCheck found that an event whose bytes
// set one member of a oneof and then another (legal protobuf: the last one wins) makes it read a
// string's storage as a message pointer and crash the process with SIGSEGV
// (testdata/fuzz/FuzzCheck/e695230aa7a5537c). A crash on one event would be a poison pill: the
// validator would restart, read the same record again and crash again. So before hyperpb sees
// the bytes, oneofSafe walks them and sends events that set any oneof twice, or are not
// well-formed, to protobuf-go instead. Real clients never do either, so the fast path keeps
// nearly all traffic.

// maxGuardDepth bounds the nesting the guard follows; deeper events go to protobuf-go.
const maxGuardDepth = 64

// guard is the precomputed shape of one message type for oneofSafe.
type guard struct {
	fields map[protowire.Number]guardField
	small  []guardField // fields[n] for n < len(small), for a lookup without hashing
	oneofs int          // number of real oneofs
}

type guardField struct {
	oneof   int    // index of the field's real oneof, or -1
	sub     *guard // the message type of a message field (or map value), else nil
	unknown bool   // no such field (in guard.small)
}

// newGuard builds the guard of md and every message type reachable from it.
func newGuard(md protoreflect.MessageDescriptor) *guard {
	return buildGuard(md, map[protoreflect.FullName]*guard{})
}

func buildGuard(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*guard) *guard {
	if g, ok := seen[md.FullName()]; ok {
		return g
	}
	g := &guard{fields: map[protowire.Number]guardField{}}
	seen[md.FullName()] = g
	oneofIndex := map[protoreflect.FullName]int{}
	for i := range md.Oneofs().Len() {
		if od := md.Oneofs().Get(i); !od.IsSynthetic() {
			oneofIndex[od.FullName()] = g.oneofs
			g.oneofs++
		}
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		gf := guardField{oneof: -1}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			gf.oneof = oneofIndex[od.FullName()]
		}
		switch {
		case fd.IsMap():
			if v := fd.MapValue(); v.Message() != nil {
				// A map entry is a message {1: key, 2: value}; guard its value.
				gf.sub = &guard{fields: map[protowire.Number]guardField{
					1: {oneof: -1},
					2: {oneof: -1, sub: buildGuard(v.Message(), seen)},
				}}
				gf.sub.fillSmall()
			}
		case fd.Message() != nil:
			gf.sub = buildGuard(fd.Message(), seen)
		}
		g.fields[fd.Number()] = gf
	}
	g.fillSmall()
	return g
}

// fillSmall indexes the fields numbered below 64 by number.
func (g *guard) fillSmall() {
	g.small = make([]guardField, 64)
	for i := range g.small {
		g.small[i] = guardField{oneof: -1, unknown: true}
	}
	for n, f := range g.fields {
		if n < 64 {
			g.small[n] = f
		}
	}
}

// field returns the field numbered num, if the message has one.
func (g *guard) field(num protowire.Number) (guardField, bool) {
	if num >= 0 && int(num) < len(g.small) {
		f := g.small[num]
		return f, !f.unknown
	}
	f, ok := g.fields[num]
	return f, ok
}

// oneofSafe reports whether b is well-formed wire data in which no oneof of any (nested)
// message is set more than once: data hyperpb parses safely.
func (g *guard) oneofSafe(b []byte) bool { return g.safe(b, 0) }

func (g *guard) safe(b []byte, depth int) bool {
	if depth > maxGuardDepth {
		return false
	}
	var set uint64 // oneofs seen, for messages with at most 64 of them
	if g.oneofs > 64 {
		return false
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		f, known := g.field(num)
		if known && f.oneof >= 0 {
			bit := uint64(1) << f.oneof
			if set&bit != 0 {
				return false
			}
			set |= bit
		}
		if known && f.sub != nil && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 || !f.sub.safe(v, depth+1) {
				return false
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}
