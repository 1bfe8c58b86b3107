package validator

import (
	"maps"
	"slices"
	"strconv"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
)

// protovalidate checks `string.uuid` with a regular expression, about 460 ns per field, a
// quarter of the cost of judging an event of the example schemas (three or four uuid fields
// each). Fields whose only rule is `(buf.validate.field).string.uuid = true` are therefore
// checked here, by hand, and protovalidate is told to skip them (a Filter). The violations are
// the ones protovalidate would report, with the same field path, rule id and message; FuzzCheck
// compares every verdict, violation by violation, with protovalidate's own.

// Violations of the uuid rule, as protovalidate words them.
const (
	uuidRule         = "string.uuid"
	uuidMessage      = "must be a valid UUID"
	uuidEmptyRule    = "string.uuid_empty"
	uuidEmptyMessage = "value is empty, which is not a valid UUID"
)

// nativeRules are the hand-checked fields of a set of message types.
type nativeRules struct {
	skip  map[protoreflect.FieldDescriptor]bool // uuid fields protovalidate must skip
	plans map[protoreflect.FullName]*nativePlan // message types with hand-checked fields within
	opts  []protovalidate.ValidationOption      // the filter, for Validate
}

// nativePlan is what to check in one message type: its own uuid fields, and the message
// fields (singular or repeated) leading to other plans.
type nativePlan struct {
	uuids []protoreflect.FieldDescriptor
	subs  []nativeSub
}

type nativeSub struct {
	fd   protoreflect.FieldDescriptor
	plan *nativePlan
}

var uuidOnly = validate.FieldRules_builder{String: validate.StringRules_builder{Uuid: proto.Bool(true)}.Build()}.Build()

// newNativeRules finds the hand-checkable fields of every message type reachable from roots.
// A field qualifies when it is a singular string without presence whose rules are exactly
// string.uuid = true, in a message type that is never reached through a map (map values are
// left to protovalidate).
func newNativeRules(roots []protoreflect.MessageDescriptor) *nativeRules {
	nr := &nativeRules{skip: map[protoreflect.FieldDescriptor]bool{}, plans: map[protoreflect.FullName]*nativePlan{}}
	inMaps := map[protoreflect.FullName]bool{}
	var taint func(md protoreflect.MessageDescriptor)
	taint = func(md protoreflect.MessageDescriptor) {
		if inMaps[md.FullName()] {
			return
		}
		inMaps[md.FullName()] = true
		for i := range md.Fields().Len() {
			if sub := md.Fields().Get(i).Message(); sub != nil {
				taint(sub)
			}
		}
	}
	var types []protoreflect.MessageDescriptor
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		types = append(types, md)
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			switch {
			case fd.IsMap():
				if v := fd.MapValue().Message(); v != nil {
					taint(v)
					walk(v)
				}
			case fd.Message() != nil:
				walk(fd.Message())
			}
		}
	}
	for _, md := range roots {
		walk(md)
	}
	for _, md := range types {
		if inMaps[md.FullName()] {
			continue
		}
		p := &nativePlan{}
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.HasPresence() {
				continue
			}
			if rules, err := protovalidate.ResolveFieldRules(fd); err == nil && proto.Equal(rules, uuidOnly) {
				p.uuids = append(p.uuids, fd)
				nr.skip[fd] = true
			}
		}
		if len(p.uuids) > 0 {
			nr.plans[md.FullName()] = p
		}
	}
	// Link the plans: a message field leads to a plan when its type has one or leads to one,
	// and protovalidate descends into it (no ignore = IGNORE_ALWAYS on the field).
	for changed := true; changed; {
		changed = false
		for _, md := range types {
			if inMaps[md.FullName()] {
				continue
			}
			for i := range md.Fields().Len() {
				fd := md.Fields().Get(i)
				if fd.Message() == nil || fd.IsMap() || nr.plans[fd.Message().FullName()] == nil {
					continue
				}
				if rules, err := protovalidate.ResolveFieldRules(fd); err != nil || rules.GetIgnore() == validate.Ignore_IGNORE_ALWAYS {
					continue
				}
				p := nr.plans[md.FullName()]
				if p == nil {
					p = &nativePlan{}
					nr.plans[md.FullName()] = p
				}
				if !slices.ContainsFunc(p.subs, func(s nativeSub) bool { return s.fd == fd }) {
					p.subs = append(p.subs, nativeSub{fd, nr.plans[fd.Message().FullName()]})
					changed = true
				}
			}
		}
	}
	if len(nr.skip) > 0 {
		skip := slices.Collect(maps.Keys(nr.skip))
		nr.opts = []protovalidate.ValidationOption{protovalidate.WithFilter(protovalidate.FilterFunc(
			func(_ protoreflect.Message, d protoreflect.Descriptor) bool {
				// Called for every field of every event: a kind test and a short scan are
				// cheaper than hashing the interface.
				fd, ok := d.(protoreflect.FieldDescriptor)
				if !ok || fd.Kind() != protoreflect.StringKind {
					return true
				}
				return !slices.Contains(skip, fd)
			}))}
	}
	return nr
}

// pathElem is one step from the root message to a field: the field, and the list index when
// the field is repeated (-1 otherwise).
type pathElem struct {
	fd    protoreflect.FieldDescriptor
	index int
}

// check appends to out the violations of the hand-checked fields of m, a message of p's type.
// path is scratch space for the path from the root; it is rendered only for a violation.
func (p *nativePlan) check(m protoreflect.Message, path *[]pathElem, out []*clickstreamv1.Violation) []*clickstreamv1.Violation {
	for _, fd := range p.uuids {
		s := m.Get(fd).String()
		switch {
		case s == "":
			out = append(out, &clickstreamv1.Violation{FieldPath: renderPath(*path, fd), RuleId: uuidEmptyRule, Message: uuidEmptyMessage})
		case !isUUID(s):
			out = append(out, &clickstreamv1.Violation{FieldPath: renderPath(*path, fd), RuleId: uuidRule, Message: uuidMessage})
		}
	}
	for _, sub := range p.subs {
		fd := sub.fd
		if !m.Has(fd) {
			continue
		}
		if fd.IsList() {
			l := m.Get(fd).List()
			for i := range l.Len() {
				*path = append(*path, pathElem{fd, i})
				out = sub.plan.check(l.Get(i).Message(), path, out)
				*path = (*path)[:len(*path)-1]
			}
			continue
		}
		*path = append(*path, pathElem{fd, -1})
		out = sub.plan.check(m.Get(fd).Message(), path, out)
		*path = (*path)[:len(*path)-1]
	}
	return out
}

// renderPath writes the path to leaf as protovalidate does: "items[1].sku".
func renderPath(path []pathElem, leaf protoreflect.FieldDescriptor) string {
	var b []byte
	for _, e := range path {
		b = append(b, e.fd.Name()...)
		if e.index >= 0 {
			b = append(append(append(b, '['), strconv.Itoa(e.index)...), ']')
		}
		b = append(b, '.')
	}
	return string(append(b, leaf.Name()...))
}

// isUUID reports whether s is 8-4-4-4-12 hexadecimal digits, as protovalidate's
// ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
