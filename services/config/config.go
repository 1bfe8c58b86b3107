// Package config loads a service's typed configuration from environment variables and collects
// validation problems so that an operator sees every mistake at once.
//
// A service declares its settings as a plain struct with defaults from DefaultConfig(). Each field
// that can be set from the environment carries an `env:"NAME"` tag; nested structs carry
// `envPrefix:"PREFIX_"` and are walked recursively. The full variable name is the service prefix
// plus the nested prefixes plus the field's name, e.g. COLLECTOR_ + KAFKA_ + BROKERS.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Lookup returns the value of an environment variable and whether it is set. os.LookupEnv fits.
type Lookup func(name string) (string, bool)

// FromEnv overrides the fields of the struct pointed to by dst with the environment variables
// named by its tags under prefix. Every unparsable value is reported, not only the first.
func FromEnv(dst any, prefix string) error {
	return FromLookup(dst, prefix, os.LookupEnv)
}

// FromLookup is FromEnv with an explicit variable source, for tests.
func FromLookup(dst any, prefix string, lookup Lookup) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: FromEnv needs a pointer to a struct, got %T", dst)
	}
	var errs []error
	walk(v.Elem(), prefix, func(name string, field reflect.Value) {
		raw, ok := lookup(name)
		if !ok {
			return
		}
		if err := setValue(field, strings.TrimSpace(raw)); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, raw, err))
		}
	})
	return errors.Join(errs...)
}

// Var describes one environment variable of a config struct, for generated documentation.
type Var struct {
	Name    string // full variable name
	Type    string // Go type, e.g. time.Duration
	Value   string // the current value as it would be written in the variable
	Default string // Value, or the field's `docDefault` tag where the default depends on the machine
	Doc     string // the `doc` tag
}

// Vars lists every environment variable of cfg (a struct or pointer to one) with its current value
// as the default, in declaration order. A field whose default depends on the machine (the host
// name, say) describes it in a `docDefault` tag, which Vars reports instead, so that generated
// documentation is the same everywhere.
func Vars(cfg any, prefix string) []Var {
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	var out []Var
	walkDoc(v, prefix, func(name string, field reflect.Value, sf reflect.StructField) {
		value := format(field)
		def, ok := sf.Tag.Lookup("docDefault")
		if !ok {
			def = value
		}
		out = append(out, Var{Name: name, Type: field.Type().String(), Value: value, Default: def, Doc: sf.Tag.Get("doc")})
	})
	return out
}

func walk(v reflect.Value, prefix string, visit func(name string, field reflect.Value)) {
	walkDoc(v, prefix, func(name string, field reflect.Value, _ reflect.StructField) { visit(name, field) })
}

func walkDoc(v reflect.Value, prefix string, visit func(name string, field reflect.Value, sf reflect.StructField)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		fv := v.Field(i)
		if p, ok := sf.Tag.Lookup("envPrefix"); ok && sf.Type.Kind() == reflect.Struct {
			walkDoc(fv, prefix+p, visit)
			continue
		}
		name := sf.Tag.Get("env")
		if name == "" || name == "-" {
			continue
		}
		visit(prefix+name, fv, sf)
	}
}

var durationType = reflect.TypeOf(time.Duration(0))

func setValue(f reflect.Value, raw string) error {
	if f.Type() == durationType {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("not a duration (examples: 500ms, 30s, 5m)")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, f.Type().Bits())
		if err != nil {
			return errors.New("not an integer")
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, f.Type().Bits())
		if err != nil {
			return errors.New("not a non-negative integer")
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(raw, f.Type().Bits())
		if err != nil {
			return errors.New("not a number")
		}
		f.SetFloat(x)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", f.Type())
		}
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		f.Set(reflect.ValueOf(items).Convert(f.Type()))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

func format(f reflect.Value) string {
	if f.Type() == durationType {
		return time.Duration(f.Int()).String()
	}
	if f.Kind() == reflect.Slice {
		parts := make([]string, f.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(f.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(f.Interface())
}

// Problems collects validation errors, each naming the setting it is about, so Validate can
// report all of them at once.
type Problems struct {
	errs []string
}

// Addf records a problem with the setting at path (e.g. "kafka.brokers").
func (p *Problems) Addf(path, format string, args ...any) {
	p.errs = append(p.errs, path+": "+fmt.Sprintf(format, args...))
}

// Add records err (if not nil) under path.
func (p *Problems) Add(path string, err error) {
	if err != nil {
		p.errs = append(p.errs, path+": "+err.Error())
	}
}

// Merge adds every problem of err, a result of another Validate, under path.
func (p *Problems) Merge(path string, err error) {
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		p.errs = append(p.errs, path+"."+line)
	}
}

// Err returns nil without problems, else one error listing every problem in a stable order.
func (p *Problems) Err() error {
	if len(p.errs) == 0 {
		return nil
	}
	sorted := append([]string(nil), p.errs...)
	sort.Strings(sorted)
	errs := make([]error, len(sorted))
	for i, s := range sorted {
		errs[i] = errors.New(s)
	}
	return errors.Join(errs...)
}

// Positive records a problem unless d > 0.
func (p *Problems) Positive(path string, d int64) {
	if d <= 0 {
		p.Addf(path, "must be positive, got %d", d)
	}
}

// PositiveDuration records a problem unless d > 0.
func (p *Problems) PositiveDuration(path string, d time.Duration) {
	if d <= 0 {
		p.Addf(path, "must be a positive duration, got %s", d)
	}
}

// Required records a problem if s is empty.
func (p *Problems) Required(path, s string) {
	if strings.TrimSpace(s) == "" {
		p.Addf(path, "is required")
	}
}

// OneOf records a problem unless s is one of allowed.
func (p *Problems) OneOf(path, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	p.Addf(path, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
}
