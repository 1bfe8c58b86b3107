package validator

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"buf.build/go/hyperpb"
	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
)

// Decoders: how event bytes become a message that protovalidate can check. Both give the same
// verdicts (FuzzCheck compares them); they differ in cost (BenchmarkCheck) and in trust.
const (
	// DecoderGenerated unmarshals with protobuf-go into the generated Go type when it is linked
	// into the binary (dynamicpb otherwise), reusing one message per type; strings, maps and
	// nested messages are still allocated per event. The default.
	DecoderGenerated = "generated"
	// DecoderHyperPB parses with hyperpb, a table-driven parser, into an arena reused from one
	// event to the next: fewer allocations and less time. hyperpb v0.1.3 is not memory-safe on
	// every input, so a guard (guard.go) sends what it cannot parse safely to protobuf-go, and
	// protobuf-go decides every decode error. Opt-in.
	DecoderHyperPB = "hyperpb"
	// DecoderAuto is DecoderGenerated for types whose generated code is linked in (every type
	// of the default registry) and DecoderHyperPB for the others, which dynamicpb would decode
	// about ten times slower. The default.
	DecoderAuto = "auto"
)

// Meta is what a dead letter reports about the raw record an event came in.
type Meta struct {
	// Topic, Partition and Offset locate the raw record.
	Topic     string
	Partition int32
	Offset    int64
	// TopicType is the event type the raw topic is dedicated to: the type captured from the topic
	// name, kafka.UnknownType for the catch-all topic, "" for a topic shared by every type.
	TopicType string
	// Timestamp is the raw record's timestamp: when the collector received the event.
	Timestamp time.Time
}

// Result is the verdict on one event. The event is valid when DeadLetter is nil.
type Result struct {
	// Schema is the full name of the event's message; empty when the type is unknown.
	Schema string
	// DeadLetter is the refusal, with every reason; nil for a valid event.
	DeadLetter *clickstreamv1.DeadLetter
}

// Valid reports whether the event passed.
func (r Result) Valid() bool { return r.DeadLetter == nil }

// ErrBrokenSchema is wrapped by every error about the schemas themselves rather than an event: a
// rule that does not compile or fails at run time, or a type that has its own raw topic but no
// schema. These are operator errors: the validator stops instead of dead-lettering good data.
var ErrBrokenSchema = errors.New("broken schema")

// Reasons of a SchemaError.
const (
	ReasonBrokenRule    = "broken_rule"
	ReasonMissingSchema = "missing_schema"
)

// SchemaError says why an event type cannot be judged. It matches ErrBrokenSchema.
type SchemaError struct {
	Type    string // the event type
	Message string // the message's full name; empty for a missing schema
	Reason  string // ReasonBrokenRule or ReasonMissingSchema
	Err     error  // the protovalidate CompilationError or RuntimeError, or what is missing
}

func (e *SchemaError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("event type %q: %s: %v", e.Type, strings.ReplaceAll(e.Reason, "_", " "), e.Err)
	}
	return fmt.Sprintf("event type %q (%s): %s: %v", e.Type, e.Message, strings.ReplaceAll(e.Reason, "_", " "), e.Err)
}

func (e *SchemaError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBrokenSchema) true.
func (e *SchemaError) Is(target error) bool { return target == ErrBrokenSchema }

// CheckerConfig tunes a Checker.
type CheckerConfig struct {
	// Decoder is DecoderAuto, DecoderGenerated or DecoderHyperPB.
	Decoder string
	// MaxEventBytes refuses larger events as TOO_LARGE without decoding them.
	MaxEventBytes int
	// Version is written into dead letters; empty: the validator's version.
	Version string
	// Now is the clock of failed_at; nil: time.Now.
	Now func() time.Time
}

// Checker judges events against the registry's schemas and their protovalidate rules. Every
// rule is compiled when the Checker is built, so a broken rule is reported at start-up. It is
// safe for concurrent use: each goroutine gets its own reusable decoding state from a pool.
type Checker struct {
	types         map[string]*checkType
	pv            protovalidate.Validator
	native        *nativeRules // rules checked by hand instead of by protovalidate (native.go)
	maxBytes      int
	version       string
	schemaVersion uint32 // the registry's version: what judged an event, for its schema_version header
	now           func() time.Time
}

// checkType is one event type, ready to decode and validate.
type checkType struct {
	name   string
	schema string
	hyper  *hyperpb.MessageType // nil: protobuf-go
	guard  *guard               // DecoderHyperPB: which bytes hyperpb may see (guard.go)
	native *nativePlan          // the hand-checked rules (native.go); nil: none
	pool   sync.Pool            // of *scratch
}

// scratch is the reusable state of one goroutine decoding one type.
type scratch struct {
	shared hyperpb.Shared // DecoderHyperPB: the arena, freed after each event
	buf    []byte         // DecoderHyperPB: the event bytes followed by hyperPad spare bytes
	msg    proto.Message  // DecoderGenerated: the reused message
	path   []pathElem     // scratch of the hand-checked rules
}

// hyperOpts alias strings into the parsed buffer instead of copying them: the message never
// outlives the check, and the buffer outlives the message.
var hyperOpts = []hyperpb.UnmarshalOption{hyperpb.WithAllowAlias(true)}

// hyperPad is the spare capacity kept after the bytes handed to hyperpb. Its parser reads
// words of 8 bytes and may read past the end of the data; with 9 or more spare bytes in the
// same allocation it parses in place (else it copies the input), and those reads stay inside
// one allocation, which the race detector's pointer checks (checkptr) require.
const hyperPad = 16

// maxKeptBuf is the largest buffer kept for the next event; a larger one is left to the GC.
const maxKeptBuf = 64 << 10

// NewChecker compiles a decoder and the protovalidate rules of every type in reg, and checks
// each type's rules once on an empty message so that a rule that does not compile (or fails
// on an empty message) is a *SchemaError now rather than in the middle of the stream.
func NewChecker(reg *registry.Registry, cfg CheckerConfig) (*Checker, error) {
	if cfg.Decoder != DecoderHyperPB && cfg.Decoder != DecoderGenerated && cfg.Decoder != DecoderAuto {
		return nil, fmt.Errorf("unknown decoder %q", cfg.Decoder)
	}
	types := reg.Types()
	descs := make([]protoreflect.MessageDescriptor, len(types))
	for i, et := range types {
		descs[i] = et.Message
	}
	pv, err := protovalidate.New(protovalidate.WithMessageDescriptors(descs...))
	if err != nil {
		return nil, fmt.Errorf("protovalidate: %w", err)
	}
	c := &Checker{types: make(map[string]*checkType, len(types)), pv: pv, native: newNativeRules(descs),
		maxBytes: cfg.MaxEventBytes, version: cfg.Version, schemaVersion: reg.Version(), now: cfg.Now}
	if c.version == "" {
		c.version = version()
	}
	if c.now == nil {
		c.now = time.Now
	}
	var errs []error
	for _, et := range types {
		ct := &checkType{name: et.Name, schema: string(et.Message.FullName()), native: c.native.plans[et.Message.FullName()]}
		if cfg.Decoder == DecoderHyperPB || cfg.Decoder == DecoderAuto && et.GoType() == nil {
			ct.hyper, err = compileHyper(et.Message)
			if err != nil {
				errs = append(errs, fmt.Errorf("event type %q: %w", et.Name, err))
				continue
			}
			ct.guard = newGuard(et.Message)
		}
		ct.pool.New = func() any { return &scratch{msg: et.NewMessage()} }
		c.types[et.Name] = ct
		if _, err := c.decodeValidate(ct, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// compileHyper compiles hyperpb's parser for md; hyperpb panics on what it cannot compile.
func compileHyper(md protoreflect.MessageDescriptor) (mt *hyperpb.MessageType, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("hyperpb cannot compile %s: %v", md.FullName(), r)
		}
	}()
	return hyperpb.CompileMessageDescriptor(md), nil
}

// SchemaVersion is the version of the registry the Checker was built from.
func (c *Checker) SchemaVersion() uint32 { return c.schemaVersion }

// missingSchema reports whether an event of eventType on a raw topic dedicated to topicType
// cannot be judged because the type has a topic of its own but no schema (see Check).
func (c *Checker) missingSchema(eventType, topicType string) bool {
	if _, ok := c.types[eventType]; ok {
		return false
	}
	return topicType != "" && topicType != kafka.UnknownType && topicType == eventType
}

// Schema returns the message full name of eventType, or "" when the registry has no such type.
func (c *Checker) Schema(eventType string) string {
	if ct, ok := c.types[eventType]; ok {
		return ct.schema
	}
	return ""
}

// Check judges one event: eventType is the client's type, value the raw event bytes, m the raw
// record. It is a pure function of its arguments (and the clock of failed_at):
//
//   - a valid event: a Result without DeadLetter;
//   - a refused event: a Result with one DeadLetter (UNKNOWN_TYPE, TOO_LARGE, DECODE_ERROR or
//     VALIDATION_FAILED with every violation);
//   - an event that cannot be judged because of the schemas: a *SchemaError (ErrBrokenSchema).
//     That is a type with its own raw topic but no schema, or a rule that fails to evaluate.
//     The event must then go nowhere: it is good data until proven otherwise.
//
// A type missing from the registry is UNKNOWN_TYPE when the event came on the catch-all or a
// shared topic (the collector had no topic for it), and a missing schema when it came on a raw
// topic of its own (someone created the topic, so the type is meant to exist).
func (c *Checker) Check(eventType string, value []byte, m Meta) (Result, error) {
	ct, ok := c.types[eventType]
	if !ok {
		if c.missingSchema(eventType, m.TopicType) {
			return Result{}, &SchemaError{Type: eventType, Reason: ReasonMissingSchema,
				Err: fmt.Errorf("raw topic %s exists but the registry has no such type", m.Topic)}
		}
		dl := c.deadLetter(clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE, eventType, "", value, m)
		dl.Error = fmt.Sprintf("event type %q is not in the schema registry", eventType)
		return Result{DeadLetter: dl}, nil
	}
	if len(value) > c.maxBytes {
		dl := c.deadLetter(clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE, eventType, ct.schema, value, m)
		dl.Error = fmt.Sprintf("event is %d bytes, over the limit of %d", len(value), c.maxBytes)
		return Result{Schema: ct.schema, DeadLetter: dl}, nil
	}
	o, err := c.decodeValidate(ct, value)
	if err != nil {
		return Result{}, err
	}
	switch {
	case o.decodeErr != nil:
		dl := c.deadLetter(clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR, eventType, ct.schema, value, m)
		dl.Error = o.decodeErr.Error()
		return Result{Schema: ct.schema, DeadLetter: dl}, nil
	case o.violations != nil:
		dl := c.deadLetter(clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED, eventType, ct.schema, value, m)
		dl.Violations = o.violations
		dl.Error = fmt.Sprintf("%d rule violation(s)", len(o.violations))
		return Result{Schema: ct.schema, DeadLetter: dl}, nil
	}
	return Result{Schema: ct.schema}, nil
}

// outcome is what decoding and validating found: nothing (valid), a decode error, or violations.
type outcome struct {
	decodeErr  error
	violations []*clickstreamv1.Violation
}

// decodeValidate decodes value as ct's message and validates it. The returned violations are
// copies: nothing in them points into the decoding arena, which is reused once this returns.
func (c *Checker) decodeValidate(ct *checkType, value []byte) (outcome, error) {
	s := ct.pool.Get().(*scratch)
	defer ct.pool.Put(s)
	if ct.hyper != nil && ct.guard.oneofSafe(value) {
		if cap(s.buf) < len(value)+hyperPad || cap(s.buf) > maxKeptBuf {
			s.buf = make([]byte, 0, len(value)+hyperPad)
		}
		s.buf = append(s.buf[:0], value...)
		hm := s.shared.NewMessage(ct.hyper)
		err := hm.Unmarshal(s.buf, hyperOpts...)
		if err == nil {
			o, err := c.validate(ct, hm, s)
			s.shared.Free()
			return o, err
		}
		s.shared.Free()
		// hyperpb refused the bytes. protobuf-go decides what is decodable: hyperpb v0.1.3
		// refuses some legal input (tags of field numbers >= 2^21, found by FuzzCheck), so the
		// bytes are decoded again below. Only undecodable events pay twice.
	}
	// DecoderGenerated, bytes the guard keeps from hyperpb, or bytes hyperpb refused.
	if err := proto.Unmarshal(value, s.msg); err != nil {
		return outcome{decodeErr: err}, nil
	}
	return c.validate(ct, s.msg, s)
}

// validate runs ct's rules on msg: protovalidate's, then the hand-checked ones.
func (c *Checker) validate(ct *checkType, msg proto.Message, s *scratch) (outcome, error) {
	var out []*clickstreamv1.Violation
	if err := c.pv.Validate(msg, c.native.opts...); err != nil {
		var verr *protovalidate.ValidationError
		if !errors.As(err, &verr) {
			// A CompilationError, a RuntimeError, or anything else protovalidate may return that
			// is not a verdict on the event: the rules cannot be trusted.
			return outcome{}, &SchemaError{Type: ct.name, Message: ct.schema, Reason: ReasonBrokenRule, Err: err}
		}
		out = make([]*clickstreamv1.Violation, 0, len(verr.Violations))
		for _, v := range verr.Violations {
			out = append(out, &clickstreamv1.Violation{
				FieldPath: strings.Clone(protovalidate.FieldPathString(v.Proto.GetField())),
				RuleId:    strings.Clone(v.Proto.GetRuleId()),
				Message:   strings.Clone(v.Proto.GetMessage()),
			})
		}
	}
	if ct.native != nil {
		s.path = s.path[:0]
		out = ct.native.check(msg.ProtoReflect(), &s.path, out)
	}
	return outcome{violations: out}, nil
}

func (c *Checker) deadLetter(kind clickstreamv1.FailureKind, eventType, schema string, value []byte, m Meta) *clickstreamv1.DeadLetter {
	dl := &clickstreamv1.DeadLetter{
		Kind:             kind,
		EventType:        eventType,
		Message:          schema,
		EventBytes:       value,
		SourceTopic:      m.Topic,
		SourcePartition:  m.Partition,
		SourceOffset:     m.Offset,
		FailedAt:         timestamppb.New(c.now()),
		ValidatorVersion: c.version,
	}
	if !m.Timestamp.IsZero() {
		dl.ReceivedAt = timestamppb.New(m.Timestamp)
	}
	return dl
}
