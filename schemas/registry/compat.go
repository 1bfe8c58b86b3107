package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Problem is one reason a schema version is refused: where it is (file:line:col in the
// version's .proto sources when known, the file name alone when the set carries no source info)
// and which rule it breaks.
type Problem struct {
	Pos     string // "shop/checkout.proto:12:3", "shop/checkout.proto", or ""
	Rule    string // a short rule id: "field-removed", "field-retyped", "type-renamed", ...
	Message string
}

func (p *Problem) Error() string {
	if p.Pos == "" {
		return fmt.Sprintf("%s (%s)", p.Message, p.Rule)
	}
	return fmt.Sprintf("%s: %s (%s)", p.Pos, p.Message, p.Rule)
}

// The rule ids of Problem.Rule.
const (
	RuleCompile          = "rule-compile"       // a protovalidate rule does not compile
	RuleTypeRemoved      = "type-removed"       // an event type is gone
	RuleTypeRenamed      = "type-renamed"       // an event type's name or message changed
	RuleIDFieldChanged   = "id-field-changed"   // the dedup key changed
	RuleTimeFieldChanged = "time-field-changed" // the partition time changed
	RuleFieldRemoved     = "field-removed"      // a field number is gone
	RuleFieldRenumbered  = "field-renumbered"   // a field name moved to another number
	RuleFieldRenamed     = "field-renamed"      // a field number has another name
	RuleFieldRetyped     = "field-retyped"      // kind, message or enum changed
	RuleFieldCardinality = "field-cardinality"  // singular, repeated and map swapped
	RuleEnumValueRemoved = "enum-value-removed" // an enum number is gone or renamed
)

// embeddedFailure starts protovalidate's error for a field whose message's rules do not compile.
const embeddedFailure = "failed to compile embedded type"

func problem(pos, rule, format string, args ...any) *Problem {
	return &Problem{Pos: pos, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// CheckRules compiles the protovalidate rules (CEL included) of every event type and of every
// message they reach, and reports every rule that does not compile as a *Problem: a push must
// fail on the team's machine, not in the validator, which would dead-letter every event.
func (r *Registry) CheckRules() error {
	if r == nil || len(r.types) == 0 {
		return nil
	}
	roots := make([]protoreflect.MessageDescriptor, len(r.types))
	for i, t := range r.types {
		roots[i] = t.Message
	}
	v, err := protovalidate.New(protovalidate.WithMessageDescriptors(roots...))
	if err != nil {
		return &Problem{Rule: RuleCompile, Message: fmt.Sprintf("protovalidate: %v", err)}
	}
	// Validating an empty message runs the evaluators of all its fields, so a compile error
	// surfaces; not those of the elements of an empty list or map, hence every message the
	// types reach. Most versions have no error, and this is the whole check for them.
	reachable := reachableMessages(roots)
	clean := true
	for _, md := range reachable {
		if ruleError(v.Validate(dynamicpb.NewMessage(md))) != nil {
			clean = false
			break
		}
	}
	if clean {
		return nil
	}
	// Validation stops at the first compile error, so find each one, with its position, by
	// letting a filter enable one message's or one field's rules at a time.
	var problems []error
	for _, md := range reachable {
		msg := dynamicpb.NewMessage(md)
		if err := ruleError(validateOnly(v, msg, md)); err != nil {
			problems = append(problems, problem(position(md, messageOptionsField, validateMessageNumber), RuleCompile, "%s: %v", md.FullName(), err))
		}
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			err := ruleError(validateOnly(v, msg, fd))
			// A message field whose message has a broken rule fails too; that message is
			// reachable and reports the rule at its own line.
			if err == nil || strings.Contains(err.Error(), embeddedFailure) {
				continue
			}
			problems = append(problems, problem(position(fd, fieldOptionsField, validateFieldNumber), RuleCompile, "%s: %v", fd.FullName(), err))
		}
	}
	if len(problems) == 0 {
		// Cannot happen unless protovalidate changes how it reports; do not let it pass.
		for _, md := range reachable {
			if err := ruleError(v.Validate(dynamicpb.NewMessage(md))); err != nil {
				problems = append(problems, problem(position(md), RuleCompile, "%s: %v", md.FullName(), err))
			}
		}
	}
	return errors.Join(problems...)
}

// validateOnly validates msg with only the rules of d (a message or one of its fields) enabled.
func validateOnly(v protovalidate.Validator, msg proto.Message, d protoreflect.Descriptor) error {
	only := protovalidate.FilterFunc(func(_ protoreflect.Message, got protoreflect.Descriptor) bool { return got == d })
	return v.Validate(msg, protovalidate.WithFilter(only))
}

// ruleError keeps the errors that say a rule is broken: a violation of an empty message is
// what the rules are for (required fields), not a problem.
func ruleError(err error) error {
	var (
		compile *protovalidate.CompilationError
		runtime *protovalidate.RuntimeError
	)
	if errors.As(err, &compile) || errors.As(err, &runtime) {
		return err
	}
	return nil
}

// reachableMessages lists roots and every message their fields (list elements and map values
// included) reach, each once, in a stable order.
func reachableMessages(roots []protoreflect.MessageDescriptor) []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visit = func(md protoreflect.MessageDescriptor) {
		if md == nil || seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		if !md.IsMapEntry() {
			out = append(out, md)
		}
		fields := md.Fields()
		for i := range fields.Len() {
			visit(fields.Get(i).Message())
		}
	}
	for _, md := range roots {
		visit(md)
	}
	return out
}

// Compatible reports every way next breaks readers and tables of prev, as *Problem errors
// joined; nil when next may follow prev. prev may be nil (the first version).
//
// Old events stay in Kafka and old rows in the lake, read with the new version: so every event
// type stays, with its message, id and time fields; and in every message an event type reaches,
// compared field number by field number, a field keeps its number, name (the column), kind,
// message or enum, and cardinality, and an enum keeps its values. New fields, messages, types
// and enum values, proto3 optional, oneofs, buf.validate rules and comments may change.
func Compatible(prev, next *Registry) error {
	switch {
	case next == nil:
		return errors.New("no version to check")
	case prev == nil:
		return nil
	}
	c := compat{seenMsg: map[[2]protoreflect.FullName]bool{}, seenEnum: map[protoreflect.FullName]bool{}}
	for _, pt := range prev.types {
		nt, ok := next.byName[pt.Name]
		if !ok {
			if moved, ok := next.byMessage[pt.Message.FullName()]; ok {
				c.add(position(moved.Message, messageOptionsField, eventOptionNumber), RuleTypeRenamed,
					"event type %q of %s is now called %q: its topics and table would be orphaned", pt.Name, pt.Message.FullName(), moved.Name)
			} else {
				c.add(position(pt.Message), RuleTypeRemoved,
					"event type %q (%s) is gone: its events and table would be orphaned", pt.Name, pt.Message.FullName())
			}
			continue
		}
		at := position(nt.Message, messageOptionsField, eventOptionNumber)
		if pt.Message.FullName() != nt.Message.FullName() {
			c.add(at, RuleTypeRenamed, "event type %q moved from message %s to %s", pt.Name, pt.Message.FullName(), nt.Message.FullName())
		}
		if was, is := fieldName(pt.IDField), fieldName(nt.IDField); was != is {
			c.add(at, RuleIDFieldChanged, "event type %q: id_field was %q, is %q: stored events would deduplicate differently", pt.Name, was, is)
		}
		if was, is := fieldName(pt.TimeField), fieldName(nt.TimeField); was != is {
			c.add(at, RuleTimeFieldChanged, "event type %q: time_field was %q, is %q: stored events would be partitioned differently", pt.Name, was, is)
		}
		c.messages(pt.Message, nt.Message)
	}
	return errors.Join(c.problems...)
}

func fieldName(fd protoreflect.FieldDescriptor) string {
	if fd == nil {
		return ""
	}
	return string(fd.Name())
}

// compat collects the problems of one Compatible call; a message or enum reached by several
// event types is compared, and reported, once.
type compat struct {
	problems []error
	seenMsg  map[[2]protoreflect.FullName]bool
	seenEnum map[protoreflect.FullName]bool
}

func (c *compat) add(pos, rule, format string, args ...any) {
	c.problems = append(c.problems, problem(pos, rule, format, args...))
}

func (c *compat) messages(prev, next protoreflect.MessageDescriptor) {
	key := [2]protoreflect.FullName{prev.FullName(), next.FullName()}
	if c.seenMsg[key] {
		return
	}
	c.seenMsg[key] = true
	pfs, nfs := prev.Fields(), next.Fields()
	for i := range pfs.Len() {
		pf := pfs.Get(i)
		nf := nfs.ByNumber(pf.Number())
		switch moved := nfs.ByName(pf.Name()); {
		case nf != nil && nf.Name() == pf.Name():
			c.field(pf, nf)
		case moved != nil:
			c.add(position(moved), RuleFieldRenumbered, "%s: field %s is number %d, was %d: stored events would decode into the wrong field",
				next.FullName(), pf.Name(), moved.Number(), pf.Number())
		case nf == nil:
			c.add(position(pf), RuleFieldRemoved, "%s: field %s = %d removed: its column and stored values would be lost (deprecate it instead)",
				prev.FullName(), pf.Name(), pf.Number())
		default:
			c.add(position(nf), RuleFieldRenamed, "%s: field %d renamed from %s to %s: its column would change",
				next.FullName(), pf.Number(), pf.Name(), nf.Name())
			c.field(pf, nf)
		}
	}
}

// field compares a field of prev with the field of the same number in next.
func (c *compat) field(prev, next protoreflect.FieldDescriptor) {
	if was, is := cardinality(prev), cardinality(next); was != is {
		c.add(position(next), RuleFieldCardinality, "%s: field %s was %s, is %s", next.ContainingMessage().FullName(), next.Name(), was, is)
		return
	}
	if was, is := fieldType(prev), fieldType(next); was != is {
		c.add(position(next), RuleFieldRetyped, "%s: field %s was %s, is %s", next.ContainingMessage().FullName(), next.Name(), was, is)
		return
	}
	if prev.IsMap() {
		prev, next = prev.MapValue(), next.MapValue()
	}
	if prev.Message() != nil {
		c.messages(prev.Message(), next.Message())
	}
	if prev.Enum() != nil {
		c.enum(prev.Enum(), next.Enum())
	}
}

func (c *compat) enum(prev, next protoreflect.EnumDescriptor) {
	if c.seenEnum[prev.FullName()] {
		return
	}
	c.seenEnum[prev.FullName()] = true
	pvs := prev.Values()
	for i := range pvs.Len() {
		pv := pvs.Get(i)
		switch nv := next.Values().ByNumber(pv.Number()); {
		case nv == nil:
			c.add(position(pv), RuleEnumValueRemoved, "%s: value %s = %d removed: stored events would carry an unknown value",
				prev.FullName(), pv.Name(), pv.Number())
		case nv.Name() != pv.Name():
			c.add(position(nv), RuleEnumValueRemoved, "%s: value %d renamed from %s to %s: stored values would change",
				next.FullName(), pv.Number(), pv.Name(), nv.Name())
		}
	}
}

// cardinality is what a field holds: one value, a list, or a map.
func cardinality(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return "map"
	case fd.IsList():
		return "repeated"
	default:
		return "singular"
	}
}

// fieldType is a field's type without its cardinality: the kind, or the message or enum name.
func fieldType(fd protoreflect.FieldDescriptor) string {
	if fd.IsMap() {
		return fmt.Sprintf("map<%s, %s>", fieldType(fd.MapKey()), fieldType(fd.MapValue()))
	}
	switch {
	case fd.Message() != nil:
		return string(fd.Message().FullName())
	case fd.Enum() != nil:
		return string(fd.Enum().FullName())
	default:
		return fd.Kind().String()
	}
}

// label is a field's type as Diff shows it: "optional string", "repeated shop.v1.Item".
func label(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return fieldType(fd)
	case fd.IsList():
		return "repeated " + fieldType(fd)
	case fd.HasOptionalKeyword():
		return "optional " + fieldType(fd)
	default:
		return fieldType(fd)
	}
}

// Diff lists what changed from a to b, one line per change, sorted:
//
//   - type checkout (shop.v1.Checkout)
//   - type foo (shop.v1.Foo)
//     ~ type page_view id_field event_id -> id
//   - field page_view.coupon string = 12
//   - field page_view.referrer string = 7
//     ~ field click.x int32 -> int64
//     ~ rules page_view.page_url
//   - enum value shop.v1.Color.PURPLE = 5
//
// Fields are named by their path from the event type, so a change to a message several types
// share shows once per type (each is a table that gains or changes the column). A field whose
// number got another name is one "-" and one "+" line. a may be nil: everything in b is new.
func Diff(a, b *Registry) []string {
	if a == nil {
		a = &Registry{}
	}
	if b == nil {
		b = &Registry{}
	}
	d := differ{lines: map[string]bool{}}
	for _, at := range a.types {
		if _, ok := b.byName[at.Name]; !ok {
			d.add("- type %s (%s)", at.Name, at.Message.FullName())
		}
	}
	var aEnums, bEnums []protoreflect.EnumDescriptor
	for _, bt := range b.types {
		at, ok := a.byName[bt.Name]
		if !ok {
			d.add("+ type %s (%s)", bt.Name, bt.Message.FullName())
			continue
		}
		if was, is := at.Message.FullName(), bt.Message.FullName(); was != is {
			d.add("~ type %s %s -> %s", bt.Name, was, is)
		}
		if was, is := fieldName(at.IDField), fieldName(bt.IDField); was != is {
			d.add("~ type %s id_field %s -> %s", bt.Name, orNone(was), orNone(is))
		}
		if was, is := fieldName(at.TimeField), fieldName(bt.TimeField); was != is {
			d.add("~ type %s time_field %s -> %s", bt.Name, orNone(was), orNone(is))
		}
		d.message(bt.Name, at.Message, bt.Message, nil)
		aEnums = append(aEnums, reachableEnums(at.Message)...)
		bEnums = append(bEnums, reachableEnums(bt.Message)...)
	}
	d.enums(aEnums, bEnums)
	out := make([]string, 0, len(d.lines))
	for l := range d.lines {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func orNone(name string) string {
	if name == "" {
		return "(none)"
	}
	return name
}

type differ struct{ lines map[string]bool }

func (d *differ) add(format string, args ...any) { d.lines[fmt.Sprintf(format, args...)] = true }

// message diffs the fields of a and b by number under path; onPath stops recursive messages.
func (d *differ) message(path string, a, b protoreflect.MessageDescriptor, onPath []protoreflect.FullName) {
	if slices.Contains(onPath, b.FullName()) {
		return
	}
	onPath = append(onPath, b.FullName())
	if !sameRules(messageRules(a), messageRules(b)) {
		d.add("~ rules %s", path)
	}
	afs, bfs := a.Fields(), b.Fields()
	for i := range afs.Len() {
		af := afs.Get(i)
		if bf := bfs.ByNumber(af.Number()); bf == nil || bf.Name() != af.Name() {
			d.add("- field %s.%s %s = %d", path, af.Name(), label(af), af.Number())
		}
	}
	for i := range bfs.Len() {
		bf := bfs.Get(i)
		af := afs.ByNumber(bf.Number())
		switch {
		case af == nil || af.Name() != bf.Name():
			d.add("+ field %s.%s %s = %d", path, bf.Name(), label(bf), bf.Number())
		case label(af) != label(bf):
			d.add("~ field %s.%s %s -> %s", path, bf.Name(), label(af), label(bf))
		default:
			if !sameRules(fieldRules(af), fieldRules(bf)) {
				d.add("~ rules %s.%s", path, bf.Name())
			}
			if bf.IsMap() {
				af, bf = af.MapValue(), bf.MapValue()
			}
			if bf.Message() != nil {
				d.message(path+"."+string(bf.Name()), af.Message(), bf.Message(), onPath)
			}
		}
	}
}

// enums diffs the values of the enums both sides reach, by full name and number.
func (d *differ) enums(a, b []protoreflect.EnumDescriptor) {
	byName := map[protoreflect.FullName]protoreflect.EnumDescriptor{}
	for _, ed := range a {
		byName[ed.FullName()] = ed
	}
	for _, bed := range b {
		aed, ok := byName[bed.FullName()]
		if !ok {
			continue
		}
		avs, bvs := aed.Values(), bed.Values()
		for i := range avs.Len() {
			av := avs.Get(i)
			if bv := bvs.ByNumber(av.Number()); bv == nil || bv.Name() != av.Name() {
				d.add("- enum value %s.%s = %d", aed.FullName(), av.Name(), av.Number())
			}
		}
		for i := range bvs.Len() {
			bv := bvs.Get(i)
			if av := avs.ByNumber(bv.Number()); av == nil || av.Name() != bv.Name() {
				d.add("+ enum value %s.%s = %d", bed.FullName(), bv.Name(), bv.Number())
			}
		}
	}
}

// reachableEnums lists the enums of md's fields and of the messages they reach.
func reachableEnums(md protoreflect.MessageDescriptor) []protoreflect.EnumDescriptor {
	var out []protoreflect.EnumDescriptor
	for _, m := range reachableMessages([]protoreflect.MessageDescriptor{md}) {
		fields := m.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			if fd.Enum() != nil {
				out = append(out, fd.Enum())
			}
		}
	}
	return out
}

// messageRules and fieldRules return the buf.validate options, nil when there are none or
// they cannot be read (then both sides compare equal unless one has readable rules).
func messageRules(md protoreflect.MessageDescriptor) proto.Message {
	r, err := protovalidate.ResolveMessageRules(md)
	if err != nil || r == nil {
		return nil
	}
	return r
}

func fieldRules(fd protoreflect.FieldDescriptor) proto.Message {
	r, err := protovalidate.ResolveFieldRules(fd)
	if err != nil || r == nil {
		return nil
	}
	return r
}

// sameRules compares rules by their deterministic encoding: what the validator compiles.
func sameRules(a, b proto.Message) bool {
	enc := func(m proto.Message) []byte {
		if m == nil {
			return nil
		}
		out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return []byte(err.Error())
		}
		return out
	}
	return string(enc(a)) == string(enc(b))
}
