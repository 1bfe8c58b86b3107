// Package registry maps event types to their protobuf messages. It is built from the messages'
// own (clickstream.v1.event) option, so the .proto files are the one source of truth: the
// collector checks type names against it, the validator decodes and validates with it, and the
// lakewriter derives table schemas from it.
package registry

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
)

// EventType is one declared event type.
type EventType struct {
	// Name is the type as sent on the wire (Event.type) and used in topic and table names.
	Name string
	// Message describes the event's protobuf message.
	Message protoreflect.MessageDescriptor
	// IDField is the event's own unique id field, or nil when the schema declares none.
	IDField protoreflect.FieldDescriptor
	// TimeField is the event-time Timestamp field, or nil when the schema declares none.
	TimeField protoreflect.FieldDescriptor

	goType protoreflect.MessageType // the generated Go type, when linked into the binary
}

// NewMessage returns an empty message of the type: the generated Go type when it is linked
// into the binary, a dynamic message otherwise.
func (t EventType) NewMessage() proto.Message {
	if t.goType != nil {
		return t.goType.New().Interface()
	}
	return dynamicpb.NewMessage(t.Message)
}

// GoType returns the generated Go message type, or nil when the message is not linked in.
func (t EventType) GoType() protoreflect.MessageType { return t.goType }

// Registry is an immutable set of event types.
type Registry struct {
	byName    map[string]EventType
	byMessage map[protoreflect.FullName]EventType
	types     []EventType
	version   uint32                          // the schema version, 0 when built by New
	set       *descriptorpb.FileDescriptorSet // the files of the version, nil when built by New
}

// typeName is what an event type may look like: it must make legal, readable Kafka topic names
// (clickstream-<type>-log) and Hive table names, and be the same in every one of them.
var typeName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidTypeName reports whether name may be declared as an event type.
func ValidTypeName(name string) error {
	if !typeName.MatchString(name) {
		return fmt.Errorf("event type %q: must match %s", name, typeName)
	}
	return nil
}

// New builds a registry from every message in files that carries the (clickstream.v1.event)
// option. It reports every problem it finds at once.
func New(files ...protoreflect.FileDescriptor) (*Registry, error) {
	r := &Registry{byName: map[string]EventType{}, byMessage: map[protoreflect.FullName]EventType{}}
	var errs []error
	for _, fd := range files {
		walkMessages(fd.Messages(), func(md protoreflect.MessageDescriptor) {
			opts, ok := eventOptions(md)
			if !ok {
				return
			}
			// The errors point at the (clickstream.v1.event) option when the sources are known,
			// so that a team pushing its schemas finds the line to fix.
			at := withPosition(position(md, messageOptionsField, eventOptionNumber))
			et, typeErrs := newEventType(md, opts)
			if len(typeErrs) > 0 {
				for _, err := range typeErrs {
					errs = append(errs, fmt.Errorf("%s%s: %w", at, md.FullName(), err))
				}
				return
			}
			if prev, dup := r.byName[et.Name]; dup {
				if prev.Message.FullName() != md.FullName() {
					errs = append(errs, fmt.Errorf("%s%s: event type %q already declared by %s", at, md.FullName(), et.Name, prev.Message.FullName()))
				}
				return
			}
			r.byName[et.Name] = et
			r.byMessage[md.FullName()] = et
			r.types = append(r.types, et)
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(r.types, func(i, j int) bool { return r.types[i].Name < r.types[j].Name })
	return r, nil
}

func walkMessages(mds protoreflect.MessageDescriptors, fn func(protoreflect.MessageDescriptor)) {
	for i := range mds.Len() {
		md := mds.Get(i)
		if md.IsMapEntry() {
			continue
		}
		fn(md)
		walkMessages(md.Messages(), fn)
	}
}

func eventOptions(md protoreflect.MessageDescriptor) (*clickstreamv1.EventOptions, bool) {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, clickstreamv1.E_Event) {
		return nil, false
	}
	eo, _ := proto.GetExtension(opts, clickstreamv1.E_Event).(*clickstreamv1.EventOptions)
	return eo, eo != nil
}

// newEventType returns every problem of the declaration, each to be reported on its own line.
func newEventType(md protoreflect.MessageDescriptor, opts *clickstreamv1.EventOptions) (EventType, []error) {
	et := EventType{Name: opts.GetType(), Message: md}
	var errs []error
	if err := ValidTypeName(et.Name); err != nil {
		errs = append(errs, err)
	}
	if name := opts.GetIdField(); name != "" {
		fd := md.Fields().ByName(protoreflect.Name(name))
		switch {
		case fd == nil:
			errs = append(errs, fmt.Errorf("id_field %q: no such field", name))
		case fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap():
			errs = append(errs, fmt.Errorf("id_field %q: must be a singular string", name))
		default:
			et.IDField = fd
		}
	}
	if name := opts.GetTimeField(); name != "" {
		fd := md.Fields().ByName(protoreflect.Name(name))
		switch {
		case fd == nil:
			errs = append(errs, fmt.Errorf("time_field %q: no such field", name))
		case fd.Message() == nil || fd.Message().FullName() != "google.protobuf.Timestamp" || fd.IsList():
			errs = append(errs, fmt.Errorf("time_field %q: must be a singular google.protobuf.Timestamp", name))
		default:
			et.TimeField = fd
		}
	}
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil && mt.Descriptor() == md {
		et.goType = mt
	}
	return et, errs
}

// Lookup returns the event type called name.
func (r *Registry) Lookup(name string) (EventType, bool) {
	et, ok := r.byName[name]
	return et, ok
}

// ByMessage returns the event type whose message is called fullName.
func (r *Registry) ByMessage(fullName protoreflect.FullName) (EventType, bool) {
	et, ok := r.byMessage[fullName]
	return et, ok
}

// Types returns every event type, sorted by name.
func (r *Registry) Types() []EventType { return slices.Clone(r.types) }

// Names returns every event type name, sorted.
func (r *Registry) Names() []string {
	names := make([]string, len(r.types))
	for i, t := range r.types {
		names[i] = t.Name
	}
	return names
}

// String lists the type names, for logs.
func (r *Registry) String() string { return strings.Join(r.Names(), ",") }

// Default returns the registry of the event schemas compiled into this module
// (schemas/proto/clickstream/events).
func Default() *Registry { return defaultRegistry }

var defaultRegistry = func() *Registry {
	r, err := New(defaultFiles...)
	if err != nil {
		// The schemas are compiled in and covered by tests; a failure here is a build defect.
		panic("schemas/registry: default registry: " + err.Error())
	}
	return r
}()
