package collector

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
)

// stallProduce makes the broker hold every produce request until the returned func is called
// (also called at cleanup, before the collector stops).
func stallProduce(t *testing.T, cluster *kfake.Cluster) (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.SleepControl(func() { <-gate })
		return nil, nil, false // then handled normally
	})
	return release
}

// TestAckOnlyWhenDurable: when Kafka refuses or does not answer, every transport answers
// STATUS_ERROR / INTERNAL_ERROR with a reason, never SUCCESS, and nothing is in Kafka.
func TestAckOnlyWhenDurable(t *testing.T) {
	sendAll := func(t *testing.T, h *harness, guid string) []raccoonAck {
		t.Helper()
		req := batch(guid+"-ws", "click", "page_view")
		conn := dial(t, h.wsURL(), guid, "")
		sendWS(t, conn, req, false)
		req.ReqGuid = guid + "-json"
		sendWS(t, conn, req, true)
		acks := []raccoonAck{readAck(t, conn, 0), readAck(t, conn, 0)}
		req.ReqGuid = guid + "-http"
		status, ack := postHTTP(t, h.httpURL(), "application/proto", guid, mustMarshal(req))
		if status != 500 {
			t.Errorf("HTTP status %d, want 500", status)
		}
		req.ReqGuid = guid + "-grpc"
		acks = append(acks, ack, grpcSender(t, h, guid, "", req))
		return acks
	}
	check := func(t *testing.T, acks []raccoonAck, reasonHas string) {
		t.Helper()
		for _, a := range acks {
			if a.Status != int32(pb.Status_STATUS_ERROR) || a.Code != int32(pb.Code_CODE_INTERNAL_ERROR) {
				t.Errorf("ack %+v: want STATUS_ERROR CODE_INTERNAL_ERROR", a)
			}
			if !strings.Contains(a.Reason, reasonHas) {
				t.Errorf("ack reason %q does not mention %q", a.Reason, reasonHas)
			}
		}
	}

	t.Run("broker refuses the records", func(t *testing.T) {
		h := start(t, nil)
		fault := h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.InvalidRecord, Count: -1})
		check(t, sendAll(t, h, "refused"), "cannot publish events: 2 of 2 events failed: produce clickstream-")
		if n := testutil.ToFloat64(h.c.m.eventsFailed.WithLabelValues("click")); n != 4 {
			t.Errorf("events_failed_total{click} = %v, want 4", n)
		}
		fault.Remove()
		// Kafka is back: the next batch is acked, and only its records are in Kafka.
		conn := dial(t, h.wsURL(), "after", "")
		sendWS(t, conn, batch("recovered", "click"), false)
		wantAck(t, readAck(t, conn, 0), "recovered", pb.Code_CODE_OK, "")
		h.recordsFor("recovered", 1)
		h.mu.Lock()
		defer h.mu.Unlock()
		for guid := range h.records {
			if strings.HasPrefix(guid, "refused") {
				t.Errorf("records of refused batch %s are in Kafka", guid)
			}
		}
	})

	t.Run("broker does not answer", func(t *testing.T) {
		h := start(t, func(c *Config) { c.AckTimeout = 500 * time.Millisecond })
		stallProduce(t, h.cluster)
		check(t, sendAll(t, h, "silent"), "Kafka did not acknowledge 2 of 2 events within 500ms")
	})

	t.Run("broker keeps failing with a retriable error", func(t *testing.T) {
		h := start(t, func(c *Config) { c.AckTimeout = 500 * time.Millisecond })
		h.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
		check(t, sendAll(t, h, "retrying"), "cannot publish events")
	})
}

// TestSlowKafkaBackpressure: with Kafka stalled, the in-flight budget fills, the WebSocket
// reader waits (backpressure) and then answers "overloaded"; memory never exceeds the budget.
// Once Kafka answers, the batches that were in flight are acked SUCCESS and are in Kafka.
func TestSlowKafkaBackpressure(t *testing.T) {
	const budgetBytes = 32 << 10
	h := start(t, func(c *Config) {
		c.MaxRequestBytes = 16 << 10
		c.MaxInflightBytes = budgetBytes
		c.InflightWait = 100 * time.Millisecond
		c.AckTimeout = 20 * time.Second
		c.MaxInflightPerConn = 64
	})
	release := stallProduce(t, h.cluster)
	conn := dial(t, h.wsURL(), "busy", "")
	const batches = 10
	big := func(guid string) *pb.SendEventRequest { // about 9 KiB of budget
		req := &pb.SendEventRequest{ReqGuid: guid}
		for range 4 {
			req.Events = append(req.Events, &pb.Event{Type: "click", EventBytes: make([]byte, 2000)})
		}
		return req
	}
	for i := range batches {
		sendWS(t, conn, big("b"+strconv.Itoa(i)), false)
	}
	var mu sync.Mutex
	var acks []raccoonAck
	go func() {
		for range batches {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			a := decodeAck(t, kind == websocket.TextMessage, msg)
			mu.Lock()
			acks = append(acks, a)
			mu.Unlock()
		}
	}()
	// Every batch is either answered (overloaded) or in flight, held by the stalled broker.
	eventually(t, "every batch answered or in flight", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)+int(testutil.ToFloat64(h.c.m.inflightBatches)) == batches
	})
	// An HTTP client gets a clear 503 too.
	status, ack := postHTTP(t, h.httpURL(), "application/proto", "http", mustMarshal(big("http")))
	if status != 503 || !strings.Contains(ack.Reason, "overloaded") {
		t.Errorf("HTTP during the stall: %d %+v, want 503 overloaded", status, ack)
	}
	mu.Lock()
	overloaded := len(acks)
	for _, a := range acks {
		wantAck(t, a, a.Data["req_guid"], pb.Code_CODE_INTERNAL_ERROR, "overloaded")
	}
	mu.Unlock()
	if overloaded == 0 || overloaded == batches {
		t.Fatalf("%d of %d batches overloaded; want some in flight and some refused", overloaded, batches)
	}
	release()
	eventually(t, "every ack", func() bool { mu.Lock(); defer mu.Unlock(); return len(acks) == batches })
	for _, a := range acks[overloaded:] {
		wantAck(t, a, a.Data["req_guid"], pb.Code_CODE_OK, "")
		h.recordsFor(a.Data["req_guid"], 4)
	}
	if _, peak := h.c.budget.stats(); peak > budgetBytes {
		t.Errorf("in-flight peak %d bytes, over the budget of %d", peak, budgetBytes)
	}
	eventually(t, "budget returned", func() bool { used, _ := h.c.budget.stats(); return used == 0 })
}

func TestFireAndForget(t *testing.T) {
	h := start(t, func(c *Config) { c.FireAndForget = true })
	release := stallProduce(t, h.cluster)
	conn := dial(t, h.wsURL(), "ff", "")
	sendWS(t, conn, batch("ff", "click"), false)
	// Acked although the broker holds the records: that is what the mode is named for.
	wantAck(t, readAck(t, conn, 0), "ff", pb.Code_CODE_OK, "")
	release()
	h.recordsFor("ff", 1)
}

// gateListener holds data frames written to chosen clients: their writes block until release,
// as if the client never read. Handshakes and control frames pass.
type gateListener struct {
	net.Listener
	mu      sync.Mutex
	slow    map[string]bool // remote addresses
	blocked chan struct{}   // closed when a slow write first blocks
	once    sync.Once
	release chan struct{}
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gateConn{Conn: c, l: l}, nil
}

type gateConn struct {
	net.Conn
	l *gateListener
}

func (c *gateConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	slow := c.l.slow[c.RemoteAddr().String()]
	c.l.mu.Unlock()
	if slow && len(p) > 0 && (p[0] == 0x81 || p[0] == 0x82) { // a text or binary data frame
		c.l.once.Do(func() { close(c.l.blocked) })
		<-c.l.release
	}
	return c.Conn.Write(p)
}

// TestSlowClientDoesNotDelayOthers: a client whose acks cannot be written (it never reads) has
// its writer blocked; another client's acks still all arrive.
func TestSlowClientDoesNotDelayOthers(t *testing.T) {
	gate := &gateListener{slow: map[string]bool{}, blocked: make(chan struct{}), release: make(chan struct{})}
	h := start(t, nil, func(c *Collector) {
		c.listen = func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil || gate.Listener != nil {
				return ln, err
			}
			gate.Listener = ln // the first listener is HTTP/WebSocket
			return gate, nil
		}
	})
	t.Cleanup(func() { close(gate.release) })
	slowDial := func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			gate.mu.Lock()
			gate.slow[c.LocalAddr().String()] = true
			gate.mu.Unlock()
		}
		return c, err
	}
	slow, _, err := dialErr(h.wsURL(), "slow", "", slowDial)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for i := range 5 {
		sendWS(t, slow, batch("slow-"+strconv.Itoa(i), "click"), false)
	}
	<-gate.blocked // the slow client's writer is stuck writing its first ack

	fast := dial(t, h.wsURL(), "fast", "")
	const n = 20
	for i := range n {
		sendWS(t, fast, batch("fast-"+strconv.Itoa(i), "click"), false)
	}
	seen := map[string]bool{}
	for range n {
		a := readAck(t, fast, websocket.BinaryMessage)
		wantAck(t, a, a.Data["req_guid"], pb.Code_CODE_OK, "")
		seen[a.Data["req_guid"]] = true
	}
	if len(seen) != n {
		t.Fatalf("fast client got %d distinct acks, want %d", len(seen), n)
	}
}

// TestShutdownDrainsInFlight: on shutdown, readiness goes off, new connections are refused,
// a batch in flight is still acked SUCCESS, and then the WebSocket is closed with 1001.
func TestShutdownDrainsInFlight(t *testing.T) {
	h := start(t, nil)
	if ok, _ := h.health.Ready(); !ok {
		t.Fatal("not ready after start")
	}
	release := stallProduce(t, h.cluster)
	conn := dial(t, h.wsURL(), "draining", "")
	sendWS(t, conn, batch("in-flight", "click", "page_view"), false)
	eventually(t, "the batch in flight", func() bool { return testutil.ToFloat64(h.c.m.inflightBatches) == 1 })

	h.cancel()
	eventually(t, "readiness off", func() bool { ok, _ := h.health.Ready(); return !ok })
	eventually(t, "listener closed", func() bool {
		_, _, err := dialErr(h.wsURL(), "late", "", nil)
		return err != nil
	})
	release()
	wantAck(t, readAck(t, conn, websocket.BinaryMessage), "in-flight", pb.Code_CODE_OK, "")
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("after the last ack: %v, want close 1001", err)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		h.done = nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	h.recordsFor("in-flight", 2)
}

// TestAnyFrameKeepsConnectionAlive: a client that never answers pings (it never reads) but
// keeps sending data stays connected; a client that sends nothing is closed.
func TestAnyFrameKeepsConnectionAlive(t *testing.T) {
	h := start(t, func(c *Config) {
		c.PingInterval = 200 * time.Millisecond
		c.ReadTimeout = time.Second
	})
	busy := dial(t, h.wsURL(), "busy", "")
	idle := dial(t, h.wsURL(), "idle", "")
	const n = 25 // 2.5 s of sending, over twice the read timeout
	for i := range n {
		sendWS(t, busy, batch("keep-"+strconv.Itoa(i), "click"), false)
		time.Sleep(100 * time.Millisecond)
	}
	for range n {
		a := readAck(t, busy, 0)
		wantAck(t, a, a.Data["req_guid"], pb.Code_CODE_OK, "")
	}
	// A client ping is answered with a pong.
	pong := make(chan string, 1)
	busy.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := busy.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _, _ = busy.ReadMessage() }()
	select {
	case s := <-pong:
		if s != "hello" {
			t.Fatalf("pong %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
	// The idle client never read (so never answered a ping) and sent nothing: the server has
	// closed it. Reading now yields the queued pings, whose pongs fail on the closed socket, or
	// the close frame: either way an error, never a timeout.
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := idle.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.As(err, &ce) && ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("idle client: %v, want the connection closed", err)
		}
		break
	}
}

// TestClientCloseGetsPendingAcks: a client that closes right after sending still gets the acks
// of its batches in flight before the server echoes its close frame.
func TestClientCloseGetsPendingAcks(t *testing.T) {
	h := start(t, nil)
	release := stallProduce(t, h.cluster)
	conn := dial(t, h.wsURL(), "leaving", "")
	sendWS(t, conn, batch("last", "click"), false)
	eventually(t, "the batch in flight", func() bool { return testutil.ToFloat64(h.c.m.inflightBatches) == 1 })
	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	release()
	wantAck(t, readAck(t, conn, websocket.BinaryMessage), "last", pb.Code_CODE_OK, "")
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("after the ack: %v, want the close echoed", err)
	}
}

// TestServerPings: the server pings every connection each PingInterval, again and again, also
// while the client sends nothing (pings come from a timer, not from a goroutine per connection).
func TestServerPings(t *testing.T) {
	h := start(t, func(c *Config) {
		c.PingInterval = 100 * time.Millisecond
		c.ReadTimeout = 10 * time.Second
	})
	conn := dial(t, h.wsURL(), "pinged", "")
	var pings atomic.Int32
	conn.SetPingHandler(func(data string) error {
		if data == "--ping--" {
			pings.Add(1)
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	eventually(t, "three server pings", func() bool { return pings.Load() >= 3 })
	// Acks still flow on a pinged connection.
	sendWS(t, conn, batch("after-pings", "click"), false)
	eventually(t, "the ack", func() bool {
		return testutil.ToFloat64(h.c.m.batchesAcked.WithLabelValues(transportWS, "success")) >= 1
	})
}

// TestProducerIsDurable: SUCCESS means Kafka has the batch on every in-sync replica, once. The
// collector's producer must ask for acks=all and keep idempotent writes on, whatever the
// configuration says (read back from the client franz-go builds, not from our option list).
func TestProducerIsDurable(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"defaults":        nil,
		"fire and forget": func(c *Config) { c.FireAndForget = true },
		"no compression":  func(c *Config) { c.Producer.Compression = "none"; c.Producer.Linger = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig([]string{"127.0.0.1:1"})
			if mutate != nil {
				mutate(&cfg)
			}
			c, err := New(cfg, run.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(kafka.ClientOpts(cfg.Kafka, slog.New(slog.DiscardHandler), nil, ""), c.producerOpts()...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if acks := cl.OptValue(kgo.RequiredAcks).(kgo.Acks); acks != kgo.AllISRAcks() {
				t.Errorf("required acks = %v, want all (-1)", acks)
			}
			if disabled := cl.OptValue(kgo.DisableIdempotentWrite).(bool); disabled {
				t.Error("idempotent writes are disabled")
			}
		})
	}
}
