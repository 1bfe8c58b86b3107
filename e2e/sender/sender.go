// Package sender is a minimal Raccoon-protocol client for the end-to-end tests: it sends batches
// over WebSocket (binary protobuf or JSON text frames), HTTP POST (protobuf or JSON) and gRPC, the
// way Raccoon's own clients do, and returns the acks. It is written from the protocol, not from
// the collector's code, so the tests check the wire contract rather than our own assumptions.
package sender

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	raccoonv1beta1 "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// Event is one event to send.
type Event struct {
	Type  string
	Bytes []byte
}

// Batch is one SendEventRequest.
type Batch struct {
	ReqGUID  string
	SentTime time.Time
	Events   []Event
}

// Request is the batch as the protobuf request.
func (b Batch) Request() *raccoonv1beta1.SendEventRequest {
	req := &raccoonv1beta1.SendEventRequest{ReqGuid: b.ReqGUID, SentTime: timestamppb.New(b.SentTime)}
	for _, e := range b.Events {
		req.Events = append(req.Events, &raccoonv1beta1.Event{EventBytes: e.Bytes, Type: e.Type})
	}
	return req
}

// jsonRequest is Raccoon's JSON form of a request: snake_case keys, bytes as base64, sent_time
// as {seconds, nanos}, which is what Raccoon's clients produce with encoding/json.
type jsonRequest struct {
	ReqGUID  string      `json:"req_guid"`
	SentTime jsonTime    `json:"sent_time"`
	Events   []jsonEvent `json:"events"`
}

type jsonTime struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

type jsonEvent struct {
	EventBytes string `json:"event_bytes"`
	Type       string `json:"type"`
}

// JSON is the batch in Raccoon's snake_case JSON form.
func (b Batch) JSON() []byte {
	r := jsonRequest{ReqGUID: b.ReqGUID, SentTime: jsonTime{b.SentTime.Unix(), int32(b.SentTime.Nanosecond())}}
	for _, e := range b.Events {
		r.Events = append(r.Events, jsonEvent{EventBytes: base64.StdEncoding.EncodeToString(e.Bytes), Type: e.Type})
	}
	out, _ := json.Marshal(r)
	return out
}

// Ack is a SendEventResponse as a Raccoon client decodes it: status and code as numbers.
type Ack struct {
	Status   int32             `json:"status"`
	Code     int32             `json:"code"`
	SentTime int64             `json:"sent_time"`
	Reason   string            `json:"reason"`
	Data     map[string]string `json:"data"`
}

// OK reports whether the ack is STATUS_SUCCESS.
func (a Ack) OK() bool { return a.Status == int32(raccoonv1beta1.Status_STATUS_SUCCESS) }

func fromProto(r *raccoonv1beta1.SendEventResponse) Ack {
	return Ack{Status: int32(r.GetStatus()), Code: int32(r.GetCode()), SentTime: r.GetSentTime(), Reason: r.GetReason(), Data: r.GetData()}
}

// WebSocket is one open WebSocket connection.
type WebSocket struct {
	conn *websocket.Conn
	json bool
}

// DialWebSocket opens url (ws://host:port/api/v1/events) with the identity headers.
// asJSON selects text frames with JSON instead of binary protobuf frames.
func DialWebSocket(ctx context.Context, url string, header http.Header, asJSON bool) (*WebSocket, error) {
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, url, header)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			return nil, fmt.Errorf("dial %s: %w (HTTP %d: %s)", url, err, resp.StatusCode, body)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return &WebSocket{conn: conn, json: asJSON}, nil
}

// Send writes every batch, then reads one ack per batch (acks may come in any order) and returns
// them keyed by req_guid.
func (w *WebSocket) Send(batches []Batch, timeout time.Duration) (map[string]Ack, error) {
	for _, b := range batches {
		var err error
		if w.json {
			err = w.conn.WriteMessage(websocket.TextMessage, b.JSON())
		} else {
			var raw []byte
			raw, err = proto.Marshal(b.Request())
			if err == nil {
				err = w.conn.WriteMessage(websocket.BinaryMessage, raw)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("write batch %s: %w", b.ReqGUID, err)
		}
	}
	acks := map[string]Ack{}
	_ = w.conn.SetReadDeadline(time.Now().Add(timeout))
	for len(acks) < len(batches) {
		kind, msg, err := w.conn.ReadMessage()
		if err != nil {
			return acks, fmt.Errorf("read ack %d of %d: %w", len(acks)+1, len(batches), err)
		}
		var ack Ack
		switch kind {
		case websocket.TextMessage:
			if err := json.Unmarshal(msg, &ack); err != nil {
				return acks, fmt.Errorf("decode JSON ack %q: %w", msg, err)
			}
		default:
			var r raccoonv1beta1.SendEventResponse
			if err := proto.Unmarshal(msg, &r); err != nil {
				return acks, fmt.Errorf("decode proto ack: %w", err)
			}
			ack = fromProto(&r)
		}
		acks[ack.Data["req_guid"]] = ack
	}
	return acks, nil
}

// Close closes the connection with a normal closure.
func (w *WebSocket) Close() error {
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return w.conn.Close()
}

// PostHTTP sends one batch with POST to url (http://host:port/api/v1/events), as protobuf or JSON.
func PostHTTP(ctx context.Context, url string, header http.Header, b Batch, asJSON bool) (Ack, error) {
	var body []byte
	ctype := "application/proto"
	if asJSON {
		body, ctype = b.JSON(), "application/json"
	} else {
		var err error
		if body, err = proto.Marshal(b.Request()); err != nil {
			return Ack{}, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Ack{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Ack{}, fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return Ack{}, err
	}
	var ack Ack
	if asJSON {
		if err := json.Unmarshal(raw, &ack); err != nil {
			return Ack{}, fmt.Errorf("decode JSON ack (HTTP %d) %q: %w", resp.StatusCode, raw, err)
		}
		return ack, nil
	}
	var r raccoonv1beta1.SendEventResponse
	if err := proto.Unmarshal(raw, &r); err != nil {
		return Ack{}, fmt.Errorf("decode proto ack (HTTP %d): %w", resp.StatusCode, err)
	}
	return fromProto(&r), nil
}

// GRPC is a gRPC connection to the collector.
type GRPC struct {
	conn   *grpc.ClientConn
	client raccoonv1beta1.EventServiceClient
}

// DialGRPC connects to addr (host:port) without TLS.
func DialGRPC(addr string) (*GRPC, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &GRPC{conn: conn, client: raccoonv1beta1.NewEventServiceClient(conn)}, nil
}

// Send sends one batch; md are the identity headers as gRPC metadata (lower-case keys).
func (g *GRPC) Send(ctx context.Context, md map[string]string, b Batch) (Ack, error) {
	ctx = metadata.NewOutgoingContext(ctx, metadata.New(md))
	r, err := g.client.SendEvent(ctx, b.Request())
	if err != nil {
		return Ack{}, err
	}
	return fromProto(r), nil
}

// Close closes the connection.
func (g *GRPC) Close() error { return g.conn.Close() }
