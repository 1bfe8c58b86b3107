package collector

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// connKey is a WebSocket's identity: (id, group), the group defaulted as Raccoon does.
type connKey struct{ id, group string }

// connTable admits WebSockets: at most max open, one per identity.
type connTable struct {
	max   int
	gauge prometheus.Gauge

	mu     sync.Mutex
	byKey  map[connKey]*wsConn  // until the reader stops
	all    map[*wsConn]struct{} // until the connection is closed
	closed bool                 // shutting down: admit nobody
}

func newConnTable(max int, gauge prometheus.Gauge) *connTable {
	return &connTable{max: max, gauge: gauge, byKey: map[connKey]*wsConn{}, all: map[*wsConn]struct{}{}}
}

// admit registers w, or tells why not: code 4 at the connection limit, code 5 for an identity
// that is already connected (the new connection is refused, the old one kept), as Raccoon.
// On admission the caller's reader goroutine is counted in wg.
func (t *connTable) admit(w *wsConn, wg *sync.WaitGroup) (o outcome, closeCode int, closeText string, admitted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return internalError(reasonShuttingDown, "server is shutting down; reconnect"), websocket.CloseGoingAway, "server shutting down", false
	case len(t.all) >= t.max:
		return outcome{code: pb.Code_CODE_MAX_CONNECTION_LIMIT_REACHED, reason: "max connection limit reached", label: reasonMaxConn},
			websocket.ClosePolicyViolation, "Max connection reached", false
	}
	if _, dup := t.byKey[w.key]; dup {
		return outcome{code: pb.Code_CODE_MAX_USER_LIMIT_REACHED, reason: fmt.Sprintf("duplicated connection: [%s] %s", w.key.group, w.key.id), label: reasonDuplicateConn},
			websocket.ClosePolicyViolation, "duplicate connection: " + w.key.id, false
	}
	t.byKey[w.key] = w
	t.all[w] = struct{}{}
	t.gauge.Set(float64(len(t.all)))
	wg.Add(1)
	return ok, 0, "", true
}

// release frees w's identity, once its reader has stopped.
func (t *connTable) release(w *wsConn) {
	t.mu.Lock()
	if t.byKey[w.key] == w {
		delete(t.byKey, w.key)
	}
	t.mu.Unlock()
}

// closedConn forgets w, once it is closed.
func (t *connTable) closedConn(w *wsConn) {
	t.mu.Lock()
	delete(t.all, w)
	t.gauge.Set(float64(len(t.all)))
	t.mu.Unlock()
}

// shut stops admissions and returns every open connection.
func (t *connTable) shut() []*wsConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	out := make([]*wsConn, 0, len(t.all))
	for w := range t.all {
		out = append(out, w)
	}
	return out
}

func (t *connTable) live() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.all)
}

// identityFrom reads the identity headers through get (HTTP headers or gRPC metadata).
func (c *Collector) identityFrom(get func(string) string) (identity, error) {
	id := identity{id: get(c.cfg.ConnIDHeader)}
	if c.cfg.ConnGroupHeader != "" {
		id.group = get(c.cfg.ConnGroupHeader)
	}
	for _, h := range []struct{ name, v string }{{c.cfg.ConnIDHeader, id.id}, {c.cfg.ConnGroupHeader, id.group}} {
		if len(h.v) > maxIdentityBytes {
			return id, fmt.Errorf("header %s is %d bytes, more than the limit of %d", h.name, len(h.v), maxIdentityBytes)
		}
		if !utf8.ValidString(h.v) {
			return id, fmt.Errorf("header %s is not valid UTF-8", h.name)
		}
	}
	return id, nil
}

// wsConn is one WebSocket. Its reader goroutine reads frames and submits batches, and at the end
// drains and closes the connection. Acks are queued as batches complete, in any order, and
// written by a writer goroutine that exists only while the queue is not empty: one writer at a
// time, each write with a deadline, so a client that does not read delays nobody but itself,
// and an idle connection costs one goroutine, not two. Pings come from a timer.
type wsConn struct {
	c    *Collector
	conn *websocket.Conn
	id   identity
	key  connKey

	// slots bounds the batches read and not yet answered; the reader takes one per frame, the
	// writer gives it back after writing the answer.
	slots chan struct{}

	mu      sync.Mutex // orders deadline extensions against shutdown
	stopped bool
	stop    chan struct{} // closed to stop reading (shutdown)

	wmu     sync.Mutex // guards queue, writing and pingOff
	queue   []wsReply  // answers not yet written
	writing bool       // a writer goroutine is running
	pingOff bool       // the connection is ending: no more pings
	wrote   chan struct{}
	broken  atomic.Bool // a write failed: the connection is being torn down
	ping    *time.Timer

	// Set by the reader before it drains; read only by the reader.

	closeCode  int    // the close frame to send after the last ack; 0: none (connection lost)
	closeText  string //
	peerClosed bool   // the client sent its close frame first

	bucket tokenBucket
}

type wsReply struct {
	kind int
	data []byte
}

func (c *Collector) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if c.draining.Load() {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	id, err := c.identityFrom(r.Header.Get)
	if err != nil {
		c.m.rejected.WithLabelValues(reasonBadIdentity).Inc()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	conn, err := c.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the handshake with an HTTP error
	}
	ws := &wsConn{
		c: c, conn: conn, id: id,
		key:    connKey{id: id.id, group: id.group},
		slots:  make(chan struct{}, c.cfg.MaxInflightPerConn),
		stop:   make(chan struct{}),
		wrote:  make(chan struct{}, 1),
		bucket: tokenBucket{rate: c.cfg.RateLimit, burst: float64(c.cfg.RateBurst)},
	}
	if ws.key.group == "" {
		ws.key.group = c.cfg.ConnGroupDefault
	}
	// As Raccoon: admission is checked after the upgrade, and a refusal is a binary
	// SendEventResponse followed by a close frame.
	o, code, text, admitted := c.conns.admit(ws, &c.wsWG)
	if !admitted {
		c.m.rejected.WithLabelValues(o.label).Inc()
		resp := response("", o)
		resp.Data = nil
		c.refuse(conn, encodeResponse(resp, false), code, text)
		return
	}
	// Armed after the assignment, so the callback never sees a nil timer.
	ws.ping = time.AfterFunc(time.Duration(1<<62), ws.sendPing)
	ws.ping.Reset(c.cfg.PingInterval)
	go ws.read()
}

// refuse answers a connection that was not admitted and closes it.
func (c *Collector) refuse(conn *websocket.Conn, msg []byte, code int, text string) {
	_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	if err := conn.WriteMessage(websocket.BinaryMessage, msg); err == nil {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(c.cfg.WriteTimeout))
		// Wait briefly for the client's close frame, so that closing does not reset the
		// connection before the client has read ours.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, _, err := conn.NextReader(); err != nil {
				break
			}
		}
	}
	_ = conn.Close()
}

// extendRead pushes the read deadline out: called for every frame, data or control.
func (w *wsConn) extendRead() {
	w.mu.Lock()
	if !w.stopped {
		_ = w.conn.SetReadDeadline(time.Now().Add(w.c.cfg.ReadTimeout))
	}
	w.mu.Unlock()
}

// shutdown stops the reader; the writer then answers what is in flight and closes with 1001.
func (w *wsConn) shutdown() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	close(w.stop)
	_ = w.conn.SetReadDeadline(time.Now()) // wakes a blocked read
}

var errFrameTooLarge = errors.New("frame too large")

func (w *wsConn) read() {
	c := w.c
	defer func() {
		c.conns.release(w)
		w.finish()
		c.wsWG.Done()
	}()
	conn := w.conn
	conn.SetPongHandler(func(string) error { w.extendRead(); return nil })
	conn.SetPingHandler(func(data string) error {
		w.extendRead()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.cfg.WriteTimeout))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	// The close frame is answered by the writer, after the acks still in flight.
	conn.SetCloseHandler(func(int, string) error { return nil })
	for {
		w.extendRead()
		if w.isStopped() {
			w.closeCode, w.closeText = websocket.CloseGoingAway, "server shutting down"
			return
		}
		kind, r, err := conn.NextReader()
		if err != nil {
			w.readFailed(err)
			return
		}
		received := time.Now()
		buf := c.buffer()
		err = readFrame(r, c.cfg.MaxRequestBytes, buf)
		if err != nil && !errors.Is(err, errFrameTooLarge) {
			c.putBuffer(buf)
			w.readFailed(err)
			return
		}
		if !w.takeSlot() {
			c.putBuffer(buf)
			w.closeCode, w.closeText = websocket.CloseGoingAway, "server shutting down"
			return
		}
		if errors.Is(err, errFrameTooLarge) {
			c.putBuffer(buf)
			c.m.bytesReceived.WithLabelValues(transportWS).Add(float64(c.cfg.MaxRequestBytes))
			o := badRequest(reasonTooLarge, "frame larger than the limit of %d bytes", c.cfg.MaxRequestBytes)
			w.answer(kind == websocket.TextMessage, "", o, received)
			w.closeCode, w.closeText = websocket.CloseMessageTooBig, fmt.Sprintf("frame larger than %d bytes", c.cfg.MaxRequestBytes)
			return
		}
		w.handle(kind, buf, received)
		c.putBuffer(buf)
	}
}

func (w *wsConn) isStopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *wsConn) takeSlot() bool {
	select {
	case w.slots <- struct{}{}:
		return true
	case <-w.stop:
		return false
	}
}

// readFailed decides how the connection closes after the reader's error.
func (w *wsConn) readFailed(err error) {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		w.peerClosed = true
		w.closeCode, w.closeText = ce.Code, ""
		if ce.Code == websocket.CloseNoStatusReceived || ce.Code == websocket.CloseAbnormalClosure || ce.Code == websocket.CloseTLSHandshake {
			w.closeCode = websocket.CloseNormalClosure
		}
	case w.isStopped():
		w.closeCode, w.closeText = websocket.CloseGoingAway, "server shutting down"
	case errors.As(err, &ne) && ne.Timeout():
		w.closeCode, w.closeText = websocket.CloseNormalClosure, fmt.Sprintf("no frame for %s", w.c.cfg.ReadTimeout)
	default: // connection lost, or a protocol error gorilla has already answered
		w.closeCode = 0
	}
}

// readFrame reads one message into buf, at most limit bytes.
func readFrame(r io.Reader, limit int, buf interface {
	ReadFrom(io.Reader) (int64, error)
}) error {
	n, err := buf.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return err
	}
	if n > int64(limit) {
		return errFrameTooLarge
	}
	return nil
}

// handle decodes one frame (holding a slot) and submits it; the slot is given back when its
// answer is written.
func (w *wsConn) handle(kind int, buf interface{ Bytes() []byte }, received time.Time) {
	c := w.c
	asJSON := kind == websocket.TextMessage
	data := buf.Bytes()
	format := formatProto
	if asJSON {
		format = formatJSON
	}
	c.m.batchesReceived.WithLabelValues(transportWS, format).Inc()
	c.m.bytesReceived.WithLabelValues(transportWS).Add(float64(len(data)))
	var req *pb.SendEventRequest
	var err error
	if asJSON {
		req, err = decodeJSON(data)
	} else {
		req, err = decodeProto(data)
	}
	if err != nil {
		w.answer(asJSON, guidOf(req), badRequest(reasonDecode, "cannot deserialize request: %v", err), received)
		return
	}
	guid := req.GetReqGuid()
	if o, good := c.check(req); !good {
		w.answer(asJSON, guid, o, received)
		return
	}
	if c.cfg.RateLimit > 0 && !w.bucket.allow(len(req.GetEvents()), received) {
		w.answer(asJSON, guid, badRequest(reasonRateLimit, "rate limit: more than %g events/s (burst %d) on this connection; slow down and retry",
			c.cfg.RateLimit, c.cfg.RateBurst), received)
		return
	}
	c.submit(w.stop, w.id, req, received, func(o outcome) { w.answer(asJSON, guid, o, received) })
}

// answer queues the reply to a batch and makes sure a writer runs; it never blocks.
func (w *wsConn) answer(asJSON bool, guid string, o outcome, received time.Time) {
	w.c.observe(transportWS, o, received)
	kind := websocket.BinaryMessage
	if asJSON {
		kind = websocket.TextMessage
	}
	reply := wsReply{kind: kind, data: encodeResponse(response(guid, o), asJSON)}
	w.wmu.Lock()
	w.queue = append(w.queue, reply)
	start := !w.writing
	w.writing = true
	w.wmu.Unlock()
	if start {
		go w.writeQueued()
	}
}

// writeQueued writes the queued answers until the queue is empty, then ends.
func (w *wsConn) writeQueued() {
	for {
		w.wmu.Lock()
		batch := w.queue
		w.queue = nil
		if len(batch) == 0 {
			w.writing = false
			w.wmu.Unlock()
			return
		}
		w.wmu.Unlock()
		for _, m := range batch {
			if !w.broken.Load() {
				_ = w.conn.SetWriteDeadline(time.Now().Add(w.c.cfg.WriteTimeout))
				if err := w.conn.WriteMessage(m.kind, m.data); err != nil {
					w.fail()
				}
			}
			<-w.slots
		}
		select { // wake a draining reader
		case w.wrote <- struct{}{}:
		default:
		}
	}
}

// fail tears a connection down after a failed write: the reader stops too.
func (w *wsConn) fail() {
	w.broken.Store(true)
	_ = w.conn.NetConn().Close()
}

// sendPing runs on the ping timer. gorilla allows control frames concurrently with the writer.
func (w *wsConn) sendPing() {
	if w.broken.Load() {
		return
	}
	err := w.conn.WriteControl(websocket.PingMessage, []byte("--ping--"), time.Now().Add(w.c.cfg.WriteTimeout))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		w.fail()
		return
	}
	w.wmu.Lock()
	if !w.pingOff {
		w.ping.Reset(w.c.cfg.PingInterval)
	}
	w.wmu.Unlock()
}

// finish runs when the reader has stopped and takes no more slots: it waits until every batch in
// flight is answered, sends the close frame and closes the connection.
func (w *wsConn) finish() {
	c := w.c
	defer func() {
		_ = w.conn.Close()
		c.conns.closedConn(w)
	}()
	flush := time.NewTimer(c.cfg.InflightWait + c.cfg.AckTimeout + c.cfg.WriteTimeout)
	defer flush.Stop()
drain:
	for len(w.slots) > 0 {
		select {
		case <-w.wrote:
		case <-flush.C:
			break drain
		case <-c.kill:
			break drain
		}
	}
	w.wmu.Lock()
	w.pingOff = true
	w.ping.Stop()
	w.wmu.Unlock()
	if w.broken.Load() || w.closeCode == 0 {
		return
	}
	msg := websocket.FormatCloseMessage(w.closeCode, w.closeText)
	if err := w.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.cfg.WriteTimeout)); err != nil || w.peerClosed {
		return
	}
	// We closed first: wait briefly for the client's close frame, so that closing the socket
	// does not reset the connection before the client has read ours.
	nc := w.conn.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, nc)
}

// tokenBucket is a per-connection rate limit in events per second. Only the reader uses it.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) allow(n int, now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if float64(n) > b.tokens {
		return false
	}
	b.tokens -= float64(n)
	return true
}
