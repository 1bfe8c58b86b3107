// Command loadgen drives a collector with WebSocket clients sending batches of sample events
// (schemas/samples) and reports acked events per second, ack latency percentiles and, given the
// collector's pid, its CPU time per acked event. See collector/README.md, "Measuring".
//
//	loadgen -embedded                       # collector + in-process kfake in this process
//	loadgen -url ws://127.0.0.1:8080/api/v1/events -pid $(pgrep -x collector)
//	loadgen -fake-kafka 127.0.0.1:9092      # only serve an in-process kfake broker until ^C
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kfake"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/clickstream/clickstream/collector"
	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/run"
)

type options struct {
	url        string
	conns      int
	batch      int
	inflight   int
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	asJSON     bool
	header     string
	pid        int
	embedded   bool
	store      bool
	fakeKafka  string
	eventsPool int
	cpuProfile string
	idle       int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:8080/api/v1/events", "collector WebSocket URL")
	flag.IntVar(&o.conns, "conns", 16, "WebSocket connections (one identity each)")
	flag.IntVar(&o.batch, "batch", 100, "events per batch")
	flag.IntVar(&o.inflight, "inflight", 10, "closed loop: unacked batches per connection")
	flag.Float64Var(&o.rate, "rate", 0, "open loop: batches per second per connection (0: closed loop)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured time")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured time before")
	flag.BoolVar(&o.asJSON, "json", false, "send JSON text frames instead of protobuf binary frames")
	flag.StringVar(&o.header, "id-header", "X-User-ID", "connection id header")
	flag.IntVar(&o.pid, "pid", 0, "collector process id, to report its CPU time per acked event")
	flag.BoolVar(&o.embedded, "embedded", false, "run a collector and an in-process kfake broker in this process and target it")
	flag.BoolVar(&o.store, "store", false, "with -embedded or -fake-kafka: keep the records (default: kfake discards them, BlackholeProduce)")
	flag.StringVar(&o.fakeKafka, "fake-kafka", "", "only serve an in-process kfake broker on this address until interrupted")
	flag.IntVar(&o.eventsPool, "pool", 1000, "distinct serialized sample events to cycle through")
	flag.IntVar(&o.idle, "idle", 0, "instead of load: hold this many idle connections for -warmup, then report the collector's RSS per connection (needs -pid)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured window (this process) to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run0(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run0(ctx context.Context, o options, out io.Writer) error {
	if o.fakeKafka != "" {
		cluster, err := newCluster(o.store, o.fakeKafka)
		if err != nil {
			return err
		}
		defer cluster.Close()
		fmt.Fprintf(out, "kfake broker on %s (store=%v); ^C to stop\n", strings.Join(cluster.ListenAddrs(), ","), o.store)
		<-ctx.Done()
		return nil
	}
	if o.embedded {
		url, pid, cleanup, err := embedded(o.store)
		if err != nil {
			return err
		}
		defer cleanup()
		o.url, o.pid = url, pid
	}
	if o.idle > 0 {
		return idle(ctx, o, out)
	}
	return generate(ctx, o, out)
}

// idle opens o.idle connections that only answer pings, waits o.warmup, and reports the
// growth of the collector's resident memory per connection.
func idle(ctx context.Context, o options, out io.Writer) error {
	rss0, err := residentBytes(o.pid)
	if err != nil {
		return err
	}
	conns := make([]*websocket.Conn, 0, o.idle)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range o.idle {
		hdr := http.Header{}
		hdr.Set(o.header, fmt.Sprintf("idle-%d-%d", os.Getpid(), i))
		c, _, err := websocket.DefaultDialer.DialContext(ctx, o.url, hdr)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		go func() { // answers pings
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
	}
	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	rss1, err := residentBytes(o.pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "loadgen: %d idle connections to %s held %s: collector RSS %d -> %d KiB, %.1f KiB per connection\n",
		o.idle, o.url, o.warmup, rss0>>10, rss1>>10, float64(rss1-rss0)/1024/float64(o.idle))
	return nil
}

// residentBytes is VmRSS of pid from /proc (Linux).
func residentBytes(pid int) (int64, error) {
	if pid == 0 {
		return 0, fmt.Errorf("-idle needs -pid")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func newCluster(store bool, addr string) (*kfake.Cluster, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if !store {
		opts = append(opts, kfake.BlackholeProduce())
	}
	if addr != "" {
		_, port, err := splitPort(addr)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kfake.Ports(port))
	}
	return kfake.NewCluster(opts...)
}

func splitPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("not host:port: %q", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	return addr[:i], p, err
}

// embedded starts kfake and a collector (rate limit off) in this process.
func embedded(store bool) (url string, pid int, cleanup func(), err error) {
	cluster, err := newCluster(store, "")
	if err != nil {
		return "", 0, nil, err
	}
	cfg := collector.DefaultConfig()
	cfg.Kafka.Brokers = cluster.ListenAddrs()
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.Telemetry.AdminAddr = "127.0.0.1:0", "", ""
	cfg.RateLimit = 0
	cfg.Topics.Partitions = 6
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := collector.New(cfg, run.Deps{Log: log})
	if err != nil {
		cluster.Close()
		return "", 0, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-c.Ready():
	case err := <-done:
		cancel()
		cluster.Close()
		return "", 0, nil, err
	}
	return "ws://" + c.HTTPAddr() + "/api/v1/events", os.Getpid(), func() { cancel(); <-done; cluster.Close() }, nil
}

// stats is what every connection adds up during the measured window.
type stats struct {
	mu        sync.Mutex
	latencies []time.Duration
	okEvents  atomic.Int64
	okBatches atomic.Int64
	errors    sync.Map // reason prefix -> *atomic.Int64
	measuring atomic.Bool
}

func (s *stats) fail(reason string) {
	if i := strings.IndexAny(reason, ":("); i > 0 {
		reason = reason[:i]
	}
	v, _ := s.errors.LoadOrStore(reason, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func generate(ctx context.Context, o options, out io.Writer) error {
	pool := eventPool(o.eventsPool)
	st := &stats{}
	runCtx, cancel := context.WithTimeout(ctx, o.warmup+o.duration)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, o.conns)
	for i := range o.conns {
		wg.Go(func() {
			if err := client(runCtx, o, i, pool, st); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("connection %d: %w", i, err)
				cancel()
			}
		})
	}
	select {
	case <-time.After(o.warmup):
	case <-runCtx.Done():
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, _ := cpuTime(o.pid)
	start := time.Now()
	st.measuring.Store(true)
	<-runCtx.Done()
	st.measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, cpuErr := cpuTime(o.pid)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	report(out, o, st, elapsed, cpu1-cpu0, cpuErr)
	return nil
}

// eventPool serializes n sample events, cycling through every type.
func eventPool(n int) []*pb.Event {
	at := time.Now()
	out := make([]*pb.Event, n)
	for i := range out {
		typ := samples.Types[i%len(samples.Types)]
		out[i] = &pb.Event{Type: typ, EventBytes: samples.Marshal(samples.Event(typ, i, at))}
	}
	return out
}

// client is one connection: a writer that keeps inflight batches outstanding (closed loop) or
// sends on a fixed schedule (open loop, latency measured from the scheduled time), and a reader
// that matches acks to batches by req_guid.
func client(ctx context.Context, o options, n int, pool []*pb.Event, st *stats) error {
	hdr := http.Header{}
	hdr.Set(o.header, fmt.Sprintf("loadgen-%d-%d", os.Getpid(), n))
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, o.url, hdr)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %s)", err, resp.Status)
		}
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	go func() { <-ctx.Done(); _ = conn.SetReadDeadline(time.Now()) }()

	var mu sync.Mutex
	sent := map[string]time.Time{}
	slots := make(chan struct{}, max(o.inflight, 1))
	readErr := make(chan error, 1)
	go func() {
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			now := time.Now()
			var ack struct {
				Status int32             `json:"status"`
				Reason string            `json:"reason"`
				Data   map[string]string `json:"data"`
			}
			if kind == websocket.TextMessage {
				err = json.Unmarshal(msg, &ack)
			} else {
				var r pb.SendEventResponse
				if err = proto.Unmarshal(msg, &r); err == nil {
					ack.Status, ack.Reason, ack.Data = int32(r.GetStatus()), r.GetReason(), r.GetData()
				}
			}
			if err != nil {
				readErr <- fmt.Errorf("decode ack: %w", err)
				return
			}
			mu.Lock()
			at, ok := sent[ack.Data["req_guid"]]
			delete(sent, ack.Data["req_guid"])
			mu.Unlock()
			if o.rate == 0 {
				<-slots
			}
			if !ok || !st.measuring.Load() {
				continue
			}
			if ack.Status != int32(pb.Status_STATUS_SUCCESS) {
				st.fail(ack.Reason)
				continue
			}
			st.okBatches.Add(1)
			st.okEvents.Add(int64(o.batch))
			st.mu.Lock()
			st.latencies = append(st.latencies, now.Sub(at))
			st.mu.Unlock()
		}
	}()

	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) / o.rate)
	}
	next := time.Now()
	for seq := 0; ; seq++ {
		if o.rate > 0 {
			next = next.Add(interval)
			select {
			case <-time.After(time.Until(next)):
			case <-ctx.Done():
				return nil
			}
		} else {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
		}
		guid := fmt.Sprintf("%d-%d", n, seq)
		req := &pb.SendEventRequest{ReqGuid: guid, SentTime: timestamppb.Now(), Events: make([]*pb.Event, o.batch)}
		for i := range req.Events {
			req.Events[i] = pool[(seq*o.batch+i)%len(pool)]
		}
		kind, frame := websocket.BinaryMessage, []byte(nil)
		if o.asJSON {
			kind, frame = websocket.TextMessage, raccoonJSON(req)
		} else if frame, err = proto.Marshal(req); err != nil {
			return err
		}
		at := time.Now()
		if o.rate > 0 {
			at = next // open loop: from the scheduled time, so a stall is not hidden
		}
		mu.Lock()
		sent[guid] = at
		mu.Unlock()
		if err := conn.WriteMessage(kind, frame); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("write: %w", err)
		}
		select {
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		default:
		}
	}
}

// raccoonJSON is Raccoon's snake_case JSON form with base64 bytes.
func raccoonJSON(req *pb.SendEventRequest) []byte {
	type event struct {
		EventBytes []byte `json:"event_bytes"`
		Type       string `json:"type"`
	}
	body := struct {
		ReqGUID  string `json:"req_guid"`
		SentTime struct {
			Seconds int64 `json:"seconds"`
			Nanos   int32 `json:"nanos"`
		} `json:"sent_time"`
		Events []event `json:"events"`
	}{ReqGUID: req.GetReqGuid()}
	body.SentTime.Seconds, body.SentTime.Nanos = req.GetSentTime().GetSeconds(), req.GetSentTime().GetNanos()
	for _, e := range req.GetEvents() {
		body.Events = append(body.Events, event{EventBytes: e.GetEventBytes(), Type: e.GetType()})
	}
	b, _ := json.Marshal(body)
	return b
}

// cpuTime is the user + system CPU time of pid from /proc (Linux).
func cpuTime(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, fmt.Errorf("no -pid")
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) start after the last ')'.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

func report(out io.Writer, o options, st *stats, elapsed, cpu time.Duration, cpuErr error) {
	mode := fmt.Sprintf("closed loop, %d batches in flight per connection", o.inflight)
	if o.rate > 0 {
		mode = fmt.Sprintf("open loop, %.1f batches/s per connection (offered %.0f events/s)", o.rate, o.rate*float64(o.conns*o.batch))
	}
	wire := "protobuf"
	if o.asJSON {
		wire = "JSON"
	}
	events := st.okEvents.Load()
	fmt.Fprintf(out, "loadgen: %s, %d connections x %d-event batches, %s, %s measured after %s warm-up\n",
		o.url, o.conns, o.batch, wire, elapsed.Round(time.Millisecond), o.warmup)
	fmt.Fprintf(out, "  %s\n", mode)
	fmt.Fprintf(out, "  acked: %d events, %.0f events/s, %.0f batches/s\n", events, float64(events)/elapsed.Seconds(), float64(st.okBatches.Load())/elapsed.Seconds())
	st.errors.Range(func(k, v any) bool {
		fmt.Fprintf(out, "  errors: %d x %q\n", v.(*atomic.Int64).Load(), k)
		return true
	})
	st.mu.Lock()
	lat := st.latencies
	st.mu.Unlock()
	if len(lat) > 0 {
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
		fmt.Fprintf(out, "  ack latency: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
			p(0.50).Round(10*time.Microsecond), p(0.90).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond),
			p(0.999).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
	switch {
	case cpuErr != nil:
		fmt.Fprintf(out, "  server CPU: not measured (%v)\n", cpuErr)
	case events > 0:
		who := fmt.Sprintf("pid %d", o.pid)
		if o.embedded {
			who = "whole process: collector + kfake + this load generator"
		}
		fmt.Fprintf(out, "  CPU: %.2f CPU-us per acked event, %.2f cores (%s)\n",
			float64(cpu.Microseconds())/float64(events), cpu.Seconds()/elapsed.Seconds(), who)
	}
}
