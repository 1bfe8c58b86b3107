package collector

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// badInputs are requests that must be refused with BAD_REQUEST and a reason, each as the bytes
// of a WebSocket frame / HTTP body, in JSON or protobuf.
var badInputs = []struct {
	name   string
	json   bool
	body   []byte
	guid   string // the req_guid the reply must carry: as far as the request could be read
	reason string
}{
	{"illegal type", false, mustMarshal(batch("g1", "click", "Page-View")), "g1", `"Page-View"`},
	{"type with a dot", false, mustMarshal(batch("g2", "page.view")), "g2", `"page.view" is not a legal type name`},
	{"empty type", false, mustMarshal(batch("g3", "")), "g3", `event type ""`},
	{"too many events", false, mustMarshal(batch("g4", "click", "click", "click", "click", "click", "click")), "g4", "6 events, more than the limit of 5"},
	{"event too large", false, mustMarshal(&pb.SendEventRequest{ReqGuid: "g5", Events: []*pb.Event{{Type: "click", EventBytes: make([]byte, 2001)}}}), "g5", "more than the limit of 2000"},
	{"long req_guid", false, mustMarshal(&pb.SendEventRequest{ReqGuid: strings.Repeat("x", 200)}), strings.Repeat("x", 200), "req_guid is 200 bytes"},
	{"garbage proto", false, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, "", "cannot deserialize request"},
	{"proto unknown field", false, append(mustMarshal(batch("g6", "click")), 0x20, 0x01), "g6", "unknown field"},
	{"bad JSON", true, []byte(`{"req_guid":`), "", "cannot deserialize request"},
	{"empty JSON", true, []byte(``), "", "empty JSON body"},
	{"JSON array", true, []byte(`[]`), "", "want an object"},
	{"unknown JSON field", true, []byte(`{"req_guid":"g","eventz":[]}`), "g", `unknown field "eventz"`},
	{"JSON wrong type", true, []byte(`{"req_guid":5}`), "", "req_guid: want a string, got number 5"},
	{"byte out of range", true, []byte(`{"events":[{"type":"click","event_bytes":[1,256]}]}`), "", "256 is not a byte value"},
	{"fractional byte", true, []byte(`{"events":[{"type":"click","event_bytes":[1.5]}]}`), "", "1.5 is not a byte value"},
	{"negative byte", true, []byte(`{"events":[{"type":"click","event_bytes":[-1]}]}`), "", "-1 is not a byte value"},
	{"bad base64", true, []byte(`{"events":[{"type":"click","event_bytes":"!!"}]}`), "", "not base64"},
	{"field twice", true, []byte(`{"req_guid":"a","reqGuid":"b"}`), "a", "given twice"},
	{"nanos out of range", true, []byte(`{"sent_time":{"seconds":1,"nanos":5000000000}}`), "", "not an integer of 32 bits"},
	{"seconds out of range", true, []byte(`{"sent_time":{"seconds":99999999999999999999}}`), "", "not an integer of 64 bits"},
	{"invalid timestamp", true, []byte(`{"sent_time":{"seconds":1,"nanos":-1}}`), "", "sent_time"},
	{"bad RFC 3339", true, []byte(`{"sentTime":"yesterday"}`), "", "not an RFC 3339 time"},
	{"trailing data", true, []byte(`{"req_guid":"g"} {}`), "g", "data after the JSON object"},
	{"event null", true, []byte(`{"events":[null]}`), "", "events[0]"},
	{"unknown event field", true, []byte(`{"events":[{"type":"click","bytes":"AA=="}]}`), "", `events[0]: unknown field "bytes"`},
	{"invalid UTF-8", true, []byte("{\"req_guid\":\"\xff\"}"), "", "not valid UTF-8"},
}

func limitsConfig(c *Config) {
	c.MaxBatchEvents = 5
	c.RateBurst = 5
	c.MaxEventBytes = 2000
	c.MaxRequestBytes = 64 << 10
}

// TestBadRequestsOverWebSocket sends every bad input on one connection: each gets BAD_REQUEST
// with a reason in its own frame type, and the connection keeps serving.
func TestBadRequestsOverWebSocket(t *testing.T) {
	h := start(t, limitsConfig)
	conn := dial(t, h.wsURL(), "bad-ws", "")
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			kind := websocket.BinaryMessage
			if tt.json {
				kind = websocket.TextMessage
			}
			if err := conn.WriteMessage(kind, tt.body); err != nil {
				t.Fatal(err)
			}
			wantAck(t, readAck(t, conn, kind), tt.guid, pb.Code_CODE_BAD_REQUEST, tt.reason)
		})
	}
	sendWS(t, conn, batch("after", "click"), false)
	wantAck(t, readAck(t, conn, websocket.BinaryMessage), "after", pb.Code_CODE_OK, "")
}

func TestBadRequestsOverHTTP(t *testing.T) {
	h := start(t, limitsConfig)
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			ctype := "application/proto"
			if tt.json {
				ctype = "application/json"
			}
			status, ack := postHTTP(t, h.httpURL(), ctype, "bad-http", tt.body)
			if status != 400 {
				t.Fatalf("HTTP %d, want 400", status)
			}
			wantAck(t, ack, tt.guid, pb.Code_CODE_BAD_REQUEST, tt.reason)
		})
	}
	t.Run("content type", func(t *testing.T) {
		for _, ctype := range []string{"text/plain", "", "application/xml; charset=utf-8", "application/json; =broken"} {
			status, ack := postHTTP(t, h.httpURL(), ctype, "bad-http", mustMarshal(batch("g", "click")))
			if status != 415 {
				t.Fatalf("%q: HTTP %d, want 415", ctype, status)
			}
			wantAck(t, ack, "", pb.Code_CODE_BAD_REQUEST, "unsupported content type")
		}
	})
	t.Run("body too large", func(t *testing.T) {
		status, ack := postHTTP(t, h.httpURL(), "application/proto", "bad-http", make([]byte, 65<<10))
		if status != 413 {
			t.Fatalf("HTTP %d, want 413", status)
		}
		wantAck(t, ack, "", pb.Code_CODE_BAD_REQUEST, "body larger than the limit of 65536 bytes")
	})
	status, ack := postHTTP(t, h.httpURL(), "application/proto", "bad-http", mustMarshal(batch("after", "click")))
	if status != 200 {
		t.Fatalf("HTTP %d after bad requests", status)
	}
	wantAck(t, ack, "after", pb.Code_CODE_OK, "")
}

// TestFrameTooLarge: an oversized frame gets BAD_REQUEST with a reason, then close 1009; the
// server keeps serving others.
func TestFrameTooLarge(t *testing.T) {
	h := start(t, limitsConfig)
	for _, kind := range []int{websocket.BinaryMessage, websocket.TextMessage} {
		conn := dial(t, h.wsURL(), "big", "")
		if err := conn.WriteMessage(kind, bytes.Repeat([]byte{'x'}, 100<<10)); err != nil {
			t.Fatal(err)
		}
		wantAck(t, readAck(t, conn, kind), "", pb.Code_CODE_BAD_REQUEST, "frame larger than the limit of 65536 bytes")
		_, _, err := conn.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
			t.Fatalf("after a frame too large: %v, want close 1009", err)
		}
		conn.Close()
	}
	conn := dial(t, h.wsURL(), "big", "") // the identity is free again
	sendWS(t, conn, batch("after", "click"), false)
	wantAck(t, readAck(t, conn, websocket.BinaryMessage), "after", pb.Code_CODE_OK, "")
}

func TestRateLimit(t *testing.T) {
	h := start(t, func(c *Config) {
		c.MaxBatchEvents = 10
		c.RateLimit = 1 // one event per second: the bucket cannot refill during the test
		c.RateBurst = 10
	})
	conn := dial(t, h.wsURL(), "fast", "")
	ten := batch("first", "click", "click", "click", "click", "click", "click", "click", "click", "click", "click")
	sendWS(t, conn, ten, false)
	wantAck(t, readAck(t, conn, 0), "first", pb.Code_CODE_OK, "")
	ten.ReqGuid = "second"
	sendWS(t, conn, ten, true)
	wantAck(t, readAck(t, conn, websocket.TextMessage), "second", pb.Code_CODE_BAD_REQUEST, "rate limit")
	other := dial(t, h.wsURL(), "calm", "") // the limit is per connection
	sendWS(t, other, batch("third", "click"), false)
	wantAck(t, readAck(t, other, 0), "third", pb.Code_CODE_OK, "")
}

// refusal reads what a refused WebSocket gets: a binary SendEventResponse, then a close frame.
func refusal(t *testing.T, conn *websocket.Conn) (raccoonAck, *websocket.CloseError) {
	t.Helper()
	ack := readAck(t, conn, websocket.BinaryMessage)
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("after the refusal: %v, want a close frame", err)
	}
	return ack, ce
}

func TestDuplicateConnection(t *testing.T) {
	h := start(t, nil)
	first := dial(t, h.wsURL(), "u1", "")
	h.waitConns(t, 1) // admission follows the upgrade: let the first one in before the second
	dup := dial(t, h.wsURL(), "u1", "")
	ack, ce := refusal(t, dup)
	if ack.Status != int32(pb.Status_STATUS_ERROR) || ack.Code != int32(pb.Code_CODE_MAX_USER_LIMIT_REACHED) || !strings.Contains(ack.Reason, "duplicated connection") {
		t.Fatalf("duplicate: ack %+v", ack)
	}
	if ce.Code != websocket.ClosePolicyViolation || ce.Text != "duplicate connection: u1" {
		t.Fatalf("duplicate: close %d %q, want 1008", ce.Code, ce.Text)
	}
	// The old connection is kept; the same id in another group is another identity.
	sendWS(t, first, batch("still-there", "click"), false)
	wantAck(t, readAck(t, first, 0), "still-there", pb.Code_CODE_OK, "")
	other := dial(t, h.wsURL(), "u1", "g2")
	sendWS(t, other, batch("other-group", "click"), false)
	wantAck(t, readAck(t, other, 0), "other-group", pb.Code_CODE_OK, "")
	// An explicit default group is the same identity as no group, as in Raccoon.
	_, ce = refusal(t, dial(t, h.wsURL(), "u1", "--default--"))
	if ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("default group: close %d", ce.Code)
	}
}

func TestMaxConnections(t *testing.T) {
	h := start(t, func(c *Config) { c.MaxConnections = 2 })
	dial(t, h.wsURL(), "a", "")
	dial(t, h.wsURL(), "b", "")
	h.waitConns(t, 2)
	ack, ce := refusal(t, dial(t, h.wsURL(), "c", ""))
	if ack.Code != int32(pb.Code_CODE_MAX_CONNECTION_LIMIT_REACHED) || ack.Status != int32(pb.Status_STATUS_ERROR) {
		t.Fatalf("third connection: ack %+v", ack)
	}
	if ce.Code != websocket.ClosePolicyViolation || ce.Text != "Max connection reached" {
		t.Fatalf("third connection: close %d %q", ce.Code, ce.Text)
	}
}
