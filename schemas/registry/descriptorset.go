package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	eventsv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/events/v1"
)

// Schemas are data: a version on the schema topic is a FileDescriptorSet of a team's own .proto
// files. Their imports of google/protobuf/*, buf/validate/validate.proto and
// clickstream/v1/options.proto resolve to the copies built into every binary (Builtin), so the
// event option and the protovalidate rules are read with the same Go types everywhere.

// Builtin reports whether path is a file every binary has built in, and a schema set therefore
// neither carries nor may redefine.
func Builtin(path string) bool {
	return strings.HasPrefix(path, "google/protobuf/") || path == "buf/validate/validate.proto" ||
		path == "clickstream/v1/options.proto"
}

// builtinFile finds a built-in file linked into the binary.
func builtinFile(path string) (protoreflect.FileDescriptor, error) {
	if !Builtin(path) {
		return nil, protoregistry.NotFound
	}
	return protoregistry.GlobalFiles.FindFileByPath(path)
}

// FromDescriptorSet builds a registry of version from the files of set: every message with the
// (clickstream.v1.event) option is an event type. The files may come in any order; imports
// outside the set must be built-in files. It reports every problem it finds at once.
func FromDescriptorSet(set *descriptorpb.FileDescriptorSet, version uint32) (*Registry, error) {
	files, err := NewFiles(set)
	if err != nil {
		return nil, err
	}
	fds := make([]protoreflect.FileDescriptor, 0, len(set.GetFile()))
	for _, f := range set.GetFile() {
		fd, err := files.FindFileByPath(f.GetName())
		if err != nil {
			return nil, err
		}
		fds = append(fds, fd)
	}
	r, err := New(fds...)
	if err != nil {
		return nil, err
	}
	r.version = version
	r.set = set
	return r, nil
}

// NewFiles links the files of set (in any order) against each other and the built-in files.
func NewFiles(set *descriptorpb.FileDescriptorSet) (*protoregistry.Files, error) {
	byPath := map[string]*descriptorpb.FileDescriptorProto{}
	for _, f := range set.GetFile() {
		switch {
		case f.GetName() == "":
			return nil, errors.New("a file of the schema set has no name")
		case Builtin(f.GetName()):
			return nil, fmt.Errorf("%s: built in, must not be part of a schema set", f.GetName())
		case byPath[f.GetName()] != nil:
			return nil, fmt.Errorf("%s: twice in the schema set", f.GetName())
		}
		byPath[f.GetName()] = f
	}
	files := new(protoregistry.Files)
	r := resolver{files}
	state := map[string]int{} // 1 = being linked, 2 = linked
	var link func(path string, from string) error
	link = func(path, from string) error {
		switch state[path] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("%s: import cycle through %s", from, path)
		}
		f := byPath[path]
		if f == nil {
			if _, err := builtinFile(path); err == nil {
				return nil
			}
			return fmt.Errorf("%s: imports %s, which is neither in the schema set nor built in", from, path)
		}
		state[path] = 1
		for _, dep := range f.GetDependency() {
			if err := link(dep, path); err != nil {
				return err
			}
		}
		fd, err := protodesc.NewFile(f, r)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := files.RegisterFile(fd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		state[path] = 2
		return nil
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := link(p, p); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// resolver finds files and descriptors in the set being linked, then among the built-in files.
type resolver struct{ files *protoregistry.Files }

func (r resolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := r.files.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return builtinFile(path)
}

func (r resolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := r.files.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return nil, err
	}
	if !Builtin(d.ParentFile().Path()) {
		return nil, protoregistry.NotFound
	}
	return d, nil
}

// DescriptorSet returns the files the registry was built from (nil for a registry built by New).
// The caller must not modify it.
func (r *Registry) DescriptorSet() *descriptorpb.FileDescriptorSet { return r.set }

// Version is the schema version the registry was built from; 0 for one built by New.
func (r *Registry) Version() uint32 { return r.version }

// DefaultDescriptorSet is the descriptor set of the example schemas (schemas/proto/clickstream/
// events): what `clickstream run` registers as version 1 on an empty schema topic.
func DefaultDescriptorSet() *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] || Builtin(fd.Path()) {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range defaultFiles {
		add(fd)
	}
	return proto.CloneOf(set)
}

// defaultFiles are the example schemas compiled into this module.
var defaultFiles = []protoreflect.FileDescriptor{
	eventsv1.File_clickstream_events_v1_page_view_proto,
	eventsv1.File_clickstream_events_v1_click_proto,
	eventsv1.File_clickstream_events_v1_add_to_cart_proto,
	eventsv1.File_clickstream_events_v1_purchase_proto,
	eventsv1.File_clickstream_events_v1_app_open_proto,
}
