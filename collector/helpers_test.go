package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
)

// harness is one collector, run by its own Run on 127.0.0.1:0, against an in-process kfake.
type harness struct {
	t       testing.TB
	c       *Collector
	cluster *kfake.Cluster
	reg     *prometheus.Registry
	health  *telemetry.Health
	cancel  context.CancelFunc
	done    chan error

	consumeOnce sync.Once
	consumer    *kgo.Client
	mu          sync.Mutex
	records     map[string][]*kgo.Record // by req_guid
}

// testConfig is DefaultConfig on random loopback ports against brokers, with short timeouts.
func testConfig(brokers []string) Config {
	cfg := DefaultConfig()
	cfg.Telemetry.AdminAddr = ""
	cfg.Kafka.Brokers = brokers
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Producer.Linger = time.Millisecond
	cfg.ShutdownTimeout = 15 * time.Second
	cfg.StartupTimeout = 15 * time.Second
	cfg.Topics.Partitions = 2
	return cfg
}

// start runs a collector; mutate adjusts the config, before (if given) the collector before Run.
func start(t testing.TB, mutate func(*Config), before ...func(*Collector)) *harness {
	t.Helper()
	return startOn(t, newCluster(t), mutate, before...)
}

// newCluster starts a one-broker kfake cluster, closed at cleanup.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

// startOn runs a collector against cluster.
func startOn(t testing.TB, cluster *kfake.Cluster, mutate func(*Config), before ...func(*Collector)) *harness {
	t.Helper()
	var err error
	cfg := testConfig(cluster.ListenAddrs())
	if mutate != nil {
		mutate(&cfg)
	}
	h := &harness{t: t, cluster: cluster, reg: prometheus.NewRegistry(), health: telemetry.NewHealth(), records: map[string][]*kgo.Record{}}
	h.c, err = New(cfg, run.Deps{Reg: h.reg, Health: h.health})
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range before {
		fn(h.c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.c.Run(ctx) }()
	t.Cleanup(h.stop)
	select {
	case <-h.c.Ready():
	case err := <-h.done:
		h.done = nil
		t.Fatalf("collector stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("collector not ready after 30s")
	}
	return h
}

// stop cancels Run and waits for it; a second call does nothing.
func (h *harness) stop() {
	h.cancel()
	if h.done == nil {
		return
	}
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Error("Run did not return 30s after cancel")
	}
	h.done = nil
	if h.consumer != nil {
		h.consumer.Close()
	}
}

func (h *harness) wsURL() string   { return "ws://" + h.c.HTTPAddr() + "/api/v1/events" }
func (h *harness) httpURL() string { return "http://" + h.c.HTTPAddr() + "/api/v1/events" }

// waitConns waits until n WebSockets are admitted.
func (h *harness) waitConns(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d admitted connections", n), func() bool { return h.c.conns.live() == n })
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recordsFor consumes every raw topic and returns the n records of batch guid, failing after
// 20 s without them or with more.
func (h *harness) recordsFor(guid string, n int) []*kgo.Record {
	h.t.Helper()
	h.consumeOnce.Do(func() {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(h.cluster.ListenAddrs()...),
			kgo.ConsumeRegex(), kgo.ConsumeTopics(`^clickstream-.*-log$`),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.MetadataMinAge(50*time.Millisecond),
			kgo.FetchMaxWait(100*time.Millisecond),
		)
		if err != nil {
			h.t.Fatal(err)
		}
		h.consumer = cl
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.mu.Lock()
		got := h.records[guid]
		h.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				h.t.Fatalf("batch %s: %d records in Kafka, want %d", guid, len(got), n)
			}
			return got
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := h.consumer.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			h.mu.Lock()
			g := header(r, "req_guid")
			h.records[g] = append(h.records[g], r)
			h.mu.Unlock()
		})
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

var sentAt = time.Date(2026, 11, 22, 13, 4, 5, 123456789, time.UTC)

// batch builds a request with one event per type: real samples for registry types, a click's
// bytes for any other.
func batch(guid string, types ...string) *pb.SendEventRequest {
	req := &pb.SendEventRequest{ReqGuid: guid, SentTime: timestamppb.New(sentAt)}
	for i, typ := range types {
		sample := typ
		if !isSampleType(typ) {
			sample = "click"
		}
		req.Events = append(req.Events, &pb.Event{Type: typ, EventBytes: samples.Marshal(samples.Event(sample, i, sentAt))})
	}
	return req
}

func isSampleType(typ string) bool {
	for _, s := range samples.Types {
		if s == typ {
			return true
		}
	}
	return false
}

// raccoonJSON is Raccoon's snake_case JSON of req; ints selects byte arrays (the JS client).
func raccoonJSON(req *pb.SendEventRequest, ints bool) []byte {
	type event struct {
		EventBytes any    `json:"event_bytes"`
		Type       string `json:"type"`
	}
	type timestamp struct {
		Seconds int64 `json:"seconds"`
		Nanos   int32 `json:"nanos"`
	}
	body := struct {
		ReqGUID  string     `json:"req_guid"`
		SentTime *timestamp `json:"sent_time,omitempty"`
		Events   []event    `json:"events"`
	}{ReqGUID: req.GetReqGuid()}
	if ts := req.GetSentTime(); ts != nil {
		body.SentTime = &timestamp{Seconds: ts.GetSeconds(), Nanos: ts.GetNanos()}
	}
	for _, e := range req.GetEvents() {
		var b any = e.GetEventBytes() // base64 by encoding/json
		if ints {
			n := make([]int, len(e.GetEventBytes()))
			for i, x := range e.GetEventBytes() {
				n[i] = int(x)
			}
			b = n
		}
		body.Events = append(body.Events, event{EventBytes: b, Type: e.GetType()})
	}
	out, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return out
}

// raccoonAck is a reply as Raccoon's Go client decodes it: plain encoding/json, numbers.
type raccoonAck struct {
	Status   int32             `json:"status"`
	Code     int32             `json:"code"`
	SentTime int64             `json:"sent_time"`
	Reason   string            `json:"reason"`
	Data     map[string]string `json:"data"`
}

func ackOf(r *pb.SendEventResponse) raccoonAck {
	return raccoonAck{Status: int32(r.GetStatus()), Code: int32(r.GetCode()), SentTime: r.GetSentTime(), Reason: r.GetReason(), Data: r.GetData()}
}

// dial opens a WebSocket with the identity headers.
func dial(t *testing.T, url, id, group string) *websocket.Conn {
	t.Helper()
	conn, resp, err := dialErr(url, id, group, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dialErr(url, id, group string, netDial func(network, addr string) (net.Conn, error)) (*websocket.Conn, *http.Response, error) {
	hdr := http.Header{}
	if id != "" {
		hdr.Set("X-User-ID", id)
	}
	if group != "" {
		hdr.Set("X-User-Group", group)
	}
	d := *websocket.DefaultDialer
	d.NetDial = netDial
	return d.Dial(url, hdr)
}

// sendWS writes req as a binary (proto) or text (Raccoon JSON) frame.
func sendWS(t *testing.T, conn *websocket.Conn, req *pb.SendEventRequest, asJSON bool) {
	t.Helper()
	var err error
	if asJSON {
		err = conn.WriteMessage(websocket.TextMessage, raccoonJSON(req, false))
	} else {
		err = conn.WriteMessage(websocket.BinaryMessage, mustMarshal(req))
	}
	if err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readAck reads one reply; JSON replies are decoded as Raccoon's client does. It checks the
// reply's frame type is wantKind (0: any).
func readAck(t *testing.T, conn *websocket.Conn, wantKind int) raccoonAck {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	kind, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read ack: %v", err)
	}
	if wantKind != 0 && kind != wantKind {
		t.Fatalf("ack frame type %d, want %d", kind, wantKind)
	}
	return decodeAck(t, kind == websocket.TextMessage, msg)
}

func decodeAck(t *testing.T, asJSON bool, msg []byte) raccoonAck {
	t.Helper()
	var a raccoonAck
	if asJSON {
		if err := json.Unmarshal(msg, &a); err != nil {
			t.Fatalf("decode JSON ack %q: %v", msg, err)
		}
		return a
	}
	var r pb.SendEventResponse
	if err := proto.Unmarshal(msg, &r); err != nil {
		t.Fatalf("decode proto ack: %v", err)
	}
	return ackOf(&r)
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// postHTTP sends body with content type ctype and returns the HTTP status and the decoded reply.
func postHTTP(t *testing.T, url, ctype, id string, body []byte) (int, raccoonAck) {
	t.Helper()
	return postHTTPGroup(t, url, ctype, id, "", body)
}

func postHTTPGroup(t *testing.T, url, ctype, id, group string, body []byte) (int, raccoonAck) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if id != "" {
		req.Header.Set("X-User-ID", id)
	}
	if group != "" {
		req.Header.Set("X-User-Group", group)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	asJSON := strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json")
	return resp.StatusCode, decodeAck(t, asJSON, raw)
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func wantAck(t *testing.T, got raccoonAck, guid string, code pb.Code, reasonHas string) {
	t.Helper()
	wantStatus := int32(pb.Status_STATUS_SUCCESS)
	if code != pb.Code_CODE_OK {
		wantStatus = int32(pb.Status_STATUS_ERROR)
	}
	if got.Status != wantStatus || got.Code != int32(code) {
		t.Fatalf("ack = %+v, want status %d code %d (%s)", got, wantStatus, code, code)
	}
	if got.Data["req_guid"] != guid {
		t.Fatalf("ack req_guid = %q, want %q (ack %+v)", got.Data["req_guid"], guid, got)
	}
	if !strings.Contains(got.Reason, reasonHas) {
		t.Fatalf("ack reason %q does not mention %q", got.Reason, reasonHas)
	}
	if got.SentTime == 0 {
		t.Fatalf("ack without sent_time: %+v", got)
	}
}

func guidFor(t *testing.T, suffix string) string {
	return fmt.Sprintf("%s-%s", strings.ReplaceAll(t.Name(), "/", "-"), suffix)
}
