package registry

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
)

// position returns where d is declared: "file:line:col" when its file carries source info,
// the file name alone when it does not (compiled-in descriptors, sets pushed without sources).
// With extra, it first tries the location of that sub-path of d (e.g. one of its options),
// which points closer to the cause.
func position(d protoreflect.Descriptor, extra ...int32) string {
	if d == nil || d.ParentFile() == nil {
		return ""
	}
	file := d.ParentFile()
	locs := file.SourceLocations()
	if locs.Len() == 0 {
		return file.Path()
	}
	loc := locs.ByDescriptor(d)
	if loc.Path == nil {
		return file.Path()
	}
	if len(extra) > 0 {
		// An option written as `option (a).b.c = ...` is located under a longer path than the
		// option's own, so take the first location the option's path starts.
		prefix := append(append(protoreflect.SourcePath{}, loc.Path...), extra...)
		for i := range locs.Len() {
			if l := locs.Get(i); hasPrefix(l.Path, prefix) {
				loc = l
				break
			}
		}
	}
	// Source locations count from 0; editors and compilers count lines and columns from 1.
	return fmt.Sprintf("%s:%d:%d", file.Path(), loc.StartLine+1, loc.StartColumn+1)
}

func hasPrefix(path, prefix protoreflect.SourcePath) bool {
	return len(path) >= len(prefix) && slices.Equal(path[:len(prefix)], prefix)
}

// Field numbers of descriptor.proto, to address options in source locations.
const (
	messageOptionsField = 7 // DescriptorProto.options
	fieldOptionsField   = 8 // FieldDescriptorProto.options
)

// eventOptionNumber is the extension number of (clickstream.v1.event), the last element of the
// option's source path.
var eventOptionNumber = int32(clickstreamv1.E_Event.TypeDescriptor().Number())

// The extension numbers of (buf.validate.message) and (buf.validate.field), to point at the
// rules of a message or field.
var (
	validateMessageNumber = int32(validate.E_Message.TypeDescriptor().Number())
	validateFieldNumber   = int32(validate.E_Field.TypeDescriptor().Number())
)

// withPosition turns a position into an error prefix, "" when there is none.
func withPosition(pos string) string {
	if pos == "" {
		return ""
	}
	return pos + ": "
}
