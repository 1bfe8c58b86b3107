package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// TestDecodeJSONForms: Raccoon's snake_case (base64 and byte arrays, any key case) and
// canonical protobuf JSON all decode to the same request, with nothing lost.
func TestDecodeJSONForms(t *testing.T) {
	want := batch("g-1", "page_view", "click", "checkout_started")
	forms := map[string][]byte{
		"snake_case base64":   raccoonJSON(want, false),
		"snake_case ints":     raccoonJSON(want, true),
		"canonical":           mustProtoJSON(want),
		"upper-case keys":     bytes.ReplaceAll(bytes.ReplaceAll(raccoonJSON(want, false), []byte(`"req_guid"`), []byte(`"REQ_GUID"`)), []byte(`"event_bytes"`), []byte(`"Event_Bytes"`)),
		"proto names in JSON": bytes.ReplaceAll(mustProtoJSON(want), []byte(`"reqGuid"`), []byte(`"req_guid"`)),
	}
	for name, body := range forms {
		t.Run(name, func(t *testing.T) {
			got, err := decodeJSON(body)
			if err != nil {
				t.Fatalf("decodeJSON(%s): %v", body, err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("decodeJSON = %v, want %v", got, want)
			}
		})
	}
}

func TestDecodeJSONEdgeCases(t *testing.T) {
	tests := []struct {
		body string
		want *pb.SendEventRequest
	}{
		{`{}`, &pb.SendEventRequest{}},
		{`{"req_guid":null,"sent_time":null,"events":null}`, &pb.SendEventRequest{}},
		{`{"events":[{}]}`, &pb.SendEventRequest{Events: []*pb.Event{{}}}},
		{`{"events":[{"type":"click","event_bytes":[]}]}`, &pb.SendEventRequest{Events: []*pb.Event{{Type: "click"}}}},
		{`{"events":[{"eventBytes":"AQI"}]}`, &pb.SendEventRequest{Events: []*pb.Event{{EventBytes: []byte{1, 2}}}}},        // unpadded
		{`{"events":[{"eventBytes":"-_8="}]}`, &pb.SendEventRequest{Events: []*pb.Event{{EventBytes: []byte{0xfb, 0xff}}}}}, // URL-safe
		{` {"sentTime":"2026-11-22T13:04:05.5+01:00"} `, &pb.SendEventRequest{SentTime: tsOf(time.Date(2026, 11, 22, 12, 4, 5, 5e8, time.UTC))}},
	}
	for _, tt := range tests {
		got, err := decodeJSON([]byte(tt.body))
		if err != nil {
			t.Errorf("decodeJSON(%s): %v", tt.body, err)
			continue
		}
		if !proto.Equal(got, tt.want) {
			t.Errorf("decodeJSON(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

// TestRaccoonClientCompatibility decodes replies exactly as Raccoon's Go client does: plain
// encoding/json into a struct with int32 status and code, int64 sent_time. The raw JSON must
// carry numbers and snake_case keys; replies must use the request's frame type.
func TestRaccoonClientCompatibility(t *testing.T) {
	type raccoonResponse struct { // the shape of raccoon/clients/go Response
		Status   int32                  `json:"status"`
		Code     int32                  `json:"code"`
		SentTime int64                  `json:"sent_time"`
		Reason   string                 `json:"reason"`
		Data     map[string]interface{} `json:"data"`
	}
	h := start(t, nil)
	conn := dial(t, h.wsURL(), "compat", "")
	check := func(raw []byte, status, code int32, guid string) {
		t.Helper()
		var r raccoonResponse
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("Raccoon client cannot decode %s: %v", raw, err)
		}
		if r.Status != status || r.Code != code || r.Data["req_guid"] != guid || r.SentTime < time.Now().Add(-time.Minute).Unix() {
			t.Fatalf("decoded %+v from %s", r, raw)
		}
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(raw, &keys)
		for k, v := range keys {
			if k != "status" && k != "code" && k != "sent_time" && k != "reason" && k != "data" {
				t.Errorf("unexpected key %q in %s", k, raw)
			}
			if (k == "status" || k == "code" || k == "sent_time") && !bytes.ContainsAny(v[:1], "0123456789") {
				t.Errorf("%s is not a number in %s", k, raw)
			}
		}
	}
	readText := func() []byte {
		t.Helper()
		kind, msg, err := conn.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			t.Fatalf("read: kind %d, %v", kind, err)
		}
		return msg
	}
	// WebSocket text frames: success and a bad request.
	if err := conn.WriteMessage(websocket.TextMessage, raccoonJSON(batch("ok-1", "click"), true)); err != nil {
		t.Fatal(err)
	}
	check(readText(), 1, 1, "ok-1")
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"req_guid":"bad-1","events":[{"type":"No Such Type"}]}`)); err != nil {
		t.Fatal(err)
	}
	check(readText(), 2, 2, "bad-1")
	// HTTP JSON.
	for _, tt := range []struct {
		body         []byte
		status, code int32
		guid         string
	}{
		{raccoonJSON(batch("ok-2", "click"), false), 1, 1, "ok-2"},
		{[]byte(`{"req_guid":"bad-2","events":[{"type":"x.y"}]}`), 2, 2, "bad-2"},
	} {
		resp, err := httpPost(h.httpURL(), "application/json", tt.body)
		if err != nil {
			t.Fatal(err)
		}
		check(resp, tt.status, tt.code, tt.guid)
	}
}

func httpPost(url, ctype string, body []byte) ([]byte, error) {
	resp, err := http.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func tsOf(at time.Time) *timestamppb.Timestamp { return timestamppb.New(at) }

// FuzzDecodeJSON: no input crashes the decoder; every refusal is a decodeError; whatever is
// accepted survives a round trip through Raccoon's JSON form unchanged.
func FuzzDecodeJSON(f *testing.F) {
	seed := batch("g", "page_view", "checkout_started")
	f.Add(raccoonJSON(seed, false))
	f.Add(raccoonJSON(seed, true))
	f.Add(mustProtoJSON(seed))
	for _, b := range badInputs {
		if b.json {
			f.Add(b.body)
		}
	}
	f.Add([]byte(`{"sent_time":{"seconds":-62135596800,"nanos":0},"events":[{"event_bytes":[0,255]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeJSON(body)
		if err != nil {
			var de *decodeError
			if !errors.As(err, &de) {
				t.Fatalf("refusal of %q is not a decodeError: %v", body, err)
			}
			return
		}
		again, err := decodeJSON(raccoonJSON(req, false))
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", req, err)
		}
		if !proto.Equal(req, again) {
			t.Fatalf("round trip changed %v into %v", req, again)
		}
	})
}

// FuzzDecodeProto: no input crashes the decoder; whatever is accepted re-marshals to an equal
// request, and refusals are decodeErrors.
func FuzzDecodeProto(f *testing.F) {
	f.Add(mustMarshal(batch("g", "page_view", "click")))
	f.Add(mustMarshal(&pb.SendEventRequest{}))
	for _, b := range badInputs {
		if !b.json {
			f.Add(b.body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeProto(body)
		if err != nil {
			var de *decodeError
			if !errors.As(err, &de) {
				t.Fatalf("refusal is not a decodeError: %v", err)
			}
			return
		}
		again, err := decodeProto(mustMarshal(req))
		if err != nil || !proto.Equal(req, again) {
			t.Fatalf("round trip of %v: %v, %v", req, again, err)
		}
	})
}
