// Package expect turns a sent protobuf event into the row the lake must hold for it, following
// the lake contract's type mapping (DESIGN.md): nested messages are objects, repeated fields are
// lists, maps are objects, enums are their value names, Timestamps are times, unset optional,
// oneof and message fields are null. Values are plain JSON-like Go values (map[string]any, []any,
// string, float64, bool, nil, time.Time) so they can be compared with what a query engine returns
// after the same normalisation.
package expect

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Row returns the expected value of every column of the event's message, keyed by column name.
func Row(m proto.Message) map[string]any {
	return message(m.ProtoReflect())
}

func message(m protoreflect.Message) map[string]any {
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		out[string(fd.Name())] = field(m, fd)
	}
	return out
}

func field(m protoreflect.Message, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsList():
		l := m.Get(fd).List()
		if l.Len() == 0 {
			return []any{}
		}
		out := make([]any, l.Len())
		for i := range l.Len() {
			out[i] = value(fd, l.Get(i))
		}
		return out
	case fd.IsMap():
		mp := m.Get(fd).Map()
		out := map[string]any{}
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			out[k.String()] = value(fd.MapValue(), v)
			return true
		})
		return out
	case fd.HasPresence() && !m.Has(fd):
		return nil
	}
	return value(fd, m.Get(fd))
}

func value(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			msg := v.Message()
			sec := msg.Get(msg.Descriptor().Fields().ByName("seconds")).Int()
			nanos := msg.Get(msg.Descriptor().Fields().ByName("nanos")).Int()
			return time.Unix(sec, nanos).UTC()
		}
		return message(v.Message())
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
		return base64.StdEncoding.EncodeToString(v.Bytes())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return float64(v.Uint())
	default:
		return float64(v.Int())
	}
}

// Normalize makes a value decoded from a query engine's JSON comparable with Row's output:
// numbers become float64, timestamps (strings in the engines' formats) are left to the caller
// through parseTime, maps and lists are normalised recursively.
func Normalize(v any, parseTime func(string) (time.Time, bool)) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Normalize(e, parseTime)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Normalize(e, parseTime)
		}
		return out
	case json.Number:
		f, _ := x.Float64()
		return f
	case int:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case float32:
		return float64(x)
	case string:
		if parseTime != nil {
			if t, ok := parseTime(x); ok {
				return t
			}
		}
		return x
	case time.Time:
		return x.UTC()
	}
	return v
}

// Diff describes how got differs from want, or returns "" when they are equal. Times are equal
// when they differ by less than precision (the table's timestamp precision: engines round).
func Diff(want, got any, precision time.Duration) string {
	var diffs []string
	diff("", want, got, precision, &diffs)
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

func diff(path string, want, got any, precision time.Duration, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want object %v, got %T %v", path, w, got, got))
			return
		}
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				*out = append(*out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diff(path+"."+k, wv, gv, precision, out)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				*out = append(*out, fmt.Sprintf("%s.%s: unexpected", path, k))
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, w, got))
			return
		}
		for i := range w {
			diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], precision, out)
		}
	case time.Time:
		g, ok := got.(time.Time)
		if !ok || w.Sub(g).Abs() >= precision {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, w, got))
		}
	default:
		if !reflect.DeepEqual(want, got) {
			*out = append(*out, fmt.Sprintf("%s: want %#v, got %#v", path, want, got))
		}
	}
}
