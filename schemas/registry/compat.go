package registry

import "fmt"

// Problem is one reason a schema version is refused: where it is (file:line:col in the new
// version's .proto sources when known) and which rule it breaks.
type Problem struct {
	Pos     string // "shop/checkout.proto:12:3", or "" when the sources are unknown
	Rule    string // a short rule id: "field-removed", "field-retyped", "type-renamed", ...
	Message string
}

func (p *Problem) Error() string {
	if p.Pos == "" {
		return fmt.Sprintf("%s (%s)", p.Message, p.Rule)
	}
	return fmt.Sprintf("%s: %s (%s)", p.Pos, p.Message, p.Rule)
}

// Compatible reports every way next breaks readers and tables of prev, as *Problem errors
// joined; nil when next may follow prev. prev may be nil (the first version).
// TODO(schemas): the rules of issue 12 (fields removed, renumbered, retyped, made repeated;
// event types renamed or removed; enum values removed; id/time fields changed).
func Compatible(prev, next *Registry) error { return nil }

// CheckRules compiles the protovalidate rules (CEL included) of every event type, and reports
// every rule that does not compile as a *Problem.
// TODO(schemas): implement.
func (r *Registry) CheckRules() error { return nil }

// Diff lists what changed from a to b, one line per change ("+ type checkout", "+ page_view.coupon string = 12").
// TODO(schemas): implement.
func Diff(a, b *Registry) []string { return nil }
