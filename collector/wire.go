package collector

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// decodeError is a request that cannot be read without losing data. Its text becomes the
// BAD_REQUEST reason after Raccoon's "cannot deserialize request: " prefix.
type decodeError struct{ msg string }

func (e *decodeError) Error() string { return e.msg }

func badf(format string, args ...any) error { return &decodeError{fmt.Sprintf(format, args...)} }

// decodeProto reads a binary SendEventRequest. Unknown fields are refused: dropping them would
// lose data the client meant to send. On error the request holds what was read before the
// problem, so that the reply can still carry its req_guid (see guidOf).
func decodeProto(b []byte) (*pb.SendEventRequest, error) {
	req := &pb.SendEventRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		return req, badf("%v", err)
	}
	if err := noUnknownFields(req); err != nil {
		return req, err
	}
	return req, nil
}

// guidOf is the req_guid to echo in a reply: what the client sent, unless it is not something
// a reply can carry.
func guidOf(req *pb.SendEventRequest) string {
	g := req.GetReqGuid()
	if len(g) > maxReqGUIDBytes || !utf8.ValidString(g) {
		return ""
	}
	return g
}

// noUnknownFields refuses field numbers that SendEventRequest (v1beta1) does not declare.
func noUnknownFields(req *pb.SendEventRequest) error {
	if len(req.ProtoReflect().GetUnknown()) > 0 {
		return badf("unknown field in SendEventRequest")
	}
	if ts := req.GetSentTime(); ts != nil && len(ts.ProtoReflect().GetUnknown()) > 0 {
		return badf("unknown field in sent_time")
	}
	for i, e := range req.GetEvents() {
		if len(e.ProtoReflect().GetUnknown()) > 0 {
			return badf("unknown field in events[%d]", i)
		}
	}
	return nil
}

// decodeJSON reads a JSON SendEventRequest in either of the two forms clients send:
//
//   - Raccoon's (Go encoding/json of the generated struct): req_guid, sent_time as
//     {"seconds":N,"nanos":N}, events[].event_bytes as base64 or as an array of byte values
//     (what the JS client sends), events[].type. Keys match case-insensitively, as encoding/json.
//   - canonical protobuf JSON (protojson): reqGuid, "sentTime":"<RFC 3339>", eventBytes as
//     base64 (standard or URL-safe, padding optional).
//
// Anything that would lose data is refused: unknown or repeated fields, wrong types, numbers
// that are not exact integers in range, invalid base64, invalid UTF-8, trailing data. On error
// the request holds what was read before the problem (for the reply's req_guid).
func decodeJSON(b []byte) (*pb.SendEventRequest, error) {
	req := &pb.SendEventRequest{}
	if len(bytes.TrimSpace(b)) == 0 {
		return req, badf("empty JSON body")
	}
	if !utf8.Valid(b) {
		return req, badf("body is not valid UTF-8")
	}
	d := &jsonReader{dec: json.NewDecoder(bytes.NewReader(b))}
	d.dec.UseNumber()
	if err := d.object("request", func(key string) error {
		switch {
		case is(key, "req_guid", "reqGuid"):
			return d.once(&d.seenGUID, key, func() (err error) { req.ReqGuid, err = d.str(key); return })
		case is(key, "sent_time", "sentTime"):
			return d.once(&d.seenSent, key, func() (err error) { req.SentTime, err = d.timestamp(key); return })
		case is(key, "events"):
			return d.once(&d.seenEvents, key, func() (err error) { req.Events, err = d.events(); return })
		}
		return badf("unknown field %q", key)
	}); err != nil {
		return req, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return req, badf("data after the JSON object")
	}
	return req, nil
}

func is(key string, names ...string) bool {
	for _, n := range names {
		if strings.EqualFold(key, n) {
			return true
		}
	}
	return false
}

type jsonReader struct {
	dec                            *json.Decoder
	seenGUID, seenSent, seenEvents bool
}

// token reads the next token, turning syntax errors into decode errors.
func (d *jsonReader) token() (json.Token, error) {
	t, err := d.dec.Token()
	if err == io.EOF {
		return nil, badf("unexpected end of JSON")
	}
	if err != nil {
		return nil, badf("invalid JSON: %v", err)
	}
	return t, nil
}

func (d *jsonReader) once(seen *bool, key string, read func() error) error {
	if *seen {
		return badf("field %q given twice", key)
	}
	*seen = true
	return read()
}

// object reads {"key": value, …}, calling field for each key; field must consume the value.
// A null object calls nothing.
func (d *jsonReader) object(what string, field func(key string) error) error {
	t, err := d.token()
	if err != nil {
		return err
	}
	if t == nil {
		if what == "request" {
			return badf("request must be a JSON object, got null")
		}
		return nil
	}
	if t != json.Delim('{') {
		return badf("%s: want an object, got %s", what, describe(t))
	}
	for d.dec.More() {
		k, err := d.token()
		if err != nil {
			return err
		}
		if err := field(k.(string)); err != nil {
			return err
		}
	}
	_, err = d.token() // '}'
	return err
}

func (d *jsonReader) str(what string) (string, error) {
	t, err := d.token()
	if err != nil {
		return "", err
	}
	switch v := t.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", badf("%s: want a string, got %s", what, describe(t))
}

func (d *jsonReader) integer(what string, bits int) (int64, error) {
	t, err := d.token()
	if err != nil {
		return 0, err
	}
	switch v := t.(type) {
	case nil:
		return 0, nil
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, bits)
		if err != nil {
			return 0, badf("%s: %s is not an integer of %d bits", what, v, bits)
		}
		return n, nil
	}
	return 0, badf("%s: want an integer, got %s", what, describe(t))
}

// timestamp reads Raccoon's {"seconds":N,"nanos":N} or protojson's RFC 3339 string.
func (d *jsonReader) timestamp(what string) (*timestamppb.Timestamp, error) {
	t, err := d.token()
	if err != nil {
		return nil, err
	}
	var ts *timestamppb.Timestamp
	switch v := t.(type) {
	case nil:
		return nil, nil
	case string:
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, badf("%s: %q is not an RFC 3339 time", what, v)
		}
		ts = timestamppb.New(at)
	case json.Delim:
		if v != '{' {
			return nil, badf("%s: want an object or RFC 3339 string, got an array", what)
		}
		ts = &timestamppb.Timestamp{}
		var seenS, seenN bool
		for d.dec.More() {
			k, err := d.token()
			if err != nil {
				return nil, err
			}
			key := k.(string)
			switch {
			case is(key, "seconds"):
				err = d.once(&seenS, what+"."+key, func() error {
					n, err := d.integer(what+".seconds", 64)
					ts.Seconds = n
					return err
				})
			case is(key, "nanos"):
				err = d.once(&seenN, what+"."+key, func() error {
					n, err := d.integer(what+".nanos", 32)
					ts.Nanos = int32(n)
					return err
				})
			default:
				err = badf("%s: unknown field %q", what, key)
			}
			if err != nil {
				return nil, err
			}
		}
		if _, err := d.token(); err != nil {
			return nil, err
		}
	default:
		return nil, badf("%s: want an object or RFC 3339 string, got %s", what, describe(t))
	}
	if err := ts.CheckValid(); err != nil {
		return nil, badf("%s: %v", what, err)
	}
	return ts, nil
}

func (d *jsonReader) events() ([]*pb.Event, error) {
	t, err := d.token()
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, nil
	}
	if t != json.Delim('[') {
		return nil, badf("events: want an array, got %s", describe(t))
	}
	var events []*pb.Event
	for i := 0; d.dec.More(); i++ {
		what := "events[" + strconv.Itoa(i) + "]"
		e := &pb.Event{}
		var seenBytes, seenType bool
		err := d.object(what, func(key string) error {
			switch {
			case is(key, "event_bytes", "eventBytes"):
				return d.once(&seenBytes, what+"."+key, func() (err error) { e.EventBytes, err = d.bytes(what + ".event_bytes"); return })
			case is(key, "type"):
				return d.once(&seenType, what+"."+key, func() (err error) { e.Type, err = d.str(what + ".type"); return })
			}
			return badf("%s: unknown field %q", what, key)
		})
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	if _, err := d.token(); err != nil { // ']'
		return nil, err
	}
	return events, nil
}

// bytes reads base64 (standard or URL-safe, padding optional) or an array of byte values. The
// value is read whole and arrays are scanned by hand: a token per byte would cost an allocation
// per byte (the JS client sends arrays).
func (d *jsonReader) bytes(what string) ([]byte, error) {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return nil, badf("invalid JSON: %v", err)
	}
	switch raw[0] {
	case 'n':
		return nil, nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badf("%s: %v", what, err)
		}
		b, err := decodeBase64(s)
		if err != nil {
			return nil, badf("%s: not base64", what)
		}
		return b, nil
	case '[':
		return byteArray(what, raw)
	}
	return nil, badf("%s: want base64 or an array of bytes, got %s", what, describeRaw(raw))
}

// byteArray parses a syntactically valid JSON array whose elements must be integers 0-255.
func byteArray(what string, raw []byte) ([]byte, error) {
	out := make([]byte, 0, len(raw)/3)
	i := 1 // after '['
	for n := 0; ; n++ {
		for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == ',') {
			i++
		}
		if raw[i] == ']' {
			return out, nil
		}
		j := i
		for j < len(raw) && !(raw[j] == ',' || raw[j] == ']' || raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
			j++
		}
		tok := raw[i:j]
		if tok[0] == '-' || tok[0] >= '0' && tok[0] <= '9' {
			v, err := strconv.ParseUint(string(tok), 10, 8)
			if err != nil {
				return nil, badf("%s[%d]: %s is not a byte value 0-255", what, n, tok)
			}
			out = append(out, byte(v))
			i = j
			continue
		}
		return nil, badf("%s[%d]: want a byte value 0-255, got %s", what, n, describeRaw(raw[i:]))
	}
}

func describeRaw(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.Strict().DecodeString(s)
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "number " + string(v)
	case string:
		return "a string"
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return "an array"
	}
	return fmt.Sprintf("%v", t)
}

// jsonResponse is SendEventResponse as Raccoon writes it with encoding/json: snake_case keys,
// enums as numbers, empty fields left out. Raccoon's clients decode it into plain structs.
type jsonResponse struct {
	Status   int32             `json:"status,omitempty"`
	Code     int32             `json:"code,omitempty"`
	SentTime int64             `json:"sent_time,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Data     map[string]string `json:"data,omitempty"`
}

// encodeResponse renders resp as protobuf or as Raccoon's JSON.
func encodeResponse(resp *pb.SendEventResponse, asJSON bool) []byte {
	if asJSON {
		out, err := json.Marshal(jsonResponse{
			Status: int32(resp.GetStatus()), Code: int32(resp.GetCode()), SentTime: resp.GetSentTime(),
			Reason: resp.GetReason(), Data: resp.GetData(),
		})
		if err != nil {
			panic("collector: marshal JSON response: " + err.Error()) // a map of strings always marshals
		}
		return out
	}
	out, err := proto.Marshal(resp)
	if err != nil {
		panic("collector: marshal response: " + err.Error())
	}
	return out
}
