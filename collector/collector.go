// Package collector accepts Raccoon-compatible event batches over WebSocket, HTTP and gRPC and acks them once Kafka has every event.
package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// healthCheck is the collector's readiness check in telemetry.Health.
const healthCheck = "collector"

// Collector is one running collector.
type Collector struct {
	cfg      Config
	log      *slog.Logger
	reg      prometheus.Registerer
	health   *telemetry.Health
	m        *metrics
	schemas  *schemastore.Live // given by the composition root, or followed in Run
	types    atomic.Pointer[typeTable]
	unknown  *eventType
	budget   *budget
	conns    *connTable
	upgrader websocket.Upgrader
	bufs     sync.Pool // *bytes.Buffer for frames and bodies

	// listen binds the listeners; tests wrap it to control connections.
	listen func(network, addr string) (net.Listener, error)

	producer   *kgo.Client
	produceCtx context.Context

	ready    chan struct{}
	httpAddr atomic.Pointer[string]
	grpcAddr atomic.Pointer[string]
	draining atomic.Bool
	kill     chan struct{} // closed when the shutdown deadline is near: stop waiting for acks
	wsWG     sync.WaitGroup
}

// Spec is the collector's binary: configuration from COLLECTOR_* variables, then Raccoon's names.
// cmd/collector and the all-in-one command use it.
func Spec() run.Spec[Config] {
	return run.Spec[Config]{
		Name:      "collector",
		EnvPrefix: EnvPrefix,
		Config:    DefaultConfig(),
		FromEnv:   func(c *Config) error { return RaccoonEnv(c, os.LookupEnv) },
		Telemetry: func(c Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c Config) time.Duration { return c.ShutdownTimeout },
		Validate:  Config.Validate,
		New:       func(c Config, d run.Deps) (run.Service, error) { return New(c, d) },
	}
}

// New checks cfg and builds the collector; nothing runs until Run. deps.Reg receives the
// clickstream_collector_* metrics (and franz-go's under clickstream_collector_kafka_*);
// deps.Health gets the "collector" readiness check.
func New(cfg Config, deps run.Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Collector{
		cfg: cfg, log: deps.Log, health: deps.Health, schemas: deps.Schemas,
		listen: net.Listen, ready: make(chan struct{}), kill: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if deps.Reg != nil {
		c.reg = deps.Reg
	} else {
		c.reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(c.reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	c.m = m
	// Until Run reads the schema topic, the collector knows the schemas it was given, or the
	// built-in examples.
	initial := registry.Default()
	if deps.Schemas != nil {
		initial = deps.Schemas.Current()
	}
	c.unknown = c.newEventType(kafka.UnknownType)
	c.types.Store(c.newTypeTable(initial))
	c.budget = newBudget(cfg.MaxInflightBytes, m.inflightBytes)
	c.conns = newConnTable(cfg.MaxConnections, m.connections)
	c.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   cfg.WSReadBufferSize,
		WriteBufferSize:  cfg.WSWriteBufferSize,
		WriteBufferPool:  &sync.Pool{},
	}
	if !cfg.CheckOrigin {
		c.upgrader.CheckOrigin = func(*http.Request) bool { return true }
	}
	c.setHealth("starting")
	return c, nil
}

// Ready is closed once the collector serves: listeners bound and, with CreateTopics, Kafka
// reached and topics created. HTTPAddr and GRPCAddr are valid from then on.
func (c *Collector) Ready() <-chan struct{} { return c.ready }

// HTTPAddr is the bound WebSocket/HTTP address (useful with port 0), "" before Ready.
func (c *Collector) HTTPAddr() string { return load(&c.httpAddr) }

// GRPCAddr is the bound gRPC address, "" before Ready or when gRPC is off.
func (c *Collector) GRPCAddr() string { return load(&c.grpcAddr) }

func load(p *atomic.Pointer[string]) string {
	if s := p.Load(); s != nil {
		return *s
	}
	return ""
}

func (c *Collector) setHealth(reason string) {
	if c.health != nil {
		c.health.Set(healthCheck, reason)
	}
}

// Run serves until ctx is cancelled, then shuts down gracefully within ShutdownTimeout:
// readiness off → listeners closed → in-flight batches acked → WebSockets closed with 1001 →
// producer flushed → client closed.
func (c *Collector) Run(ctx context.Context) error {
	cl, err := kafka.NewClient(c.cfg.Kafka, c.log, c.reg, "clickstream_collector", c.producerOpts()...)
	if err != nil {
		return err
	}
	produceCtx, cancelProduce := context.WithCancel(context.Background())
	defer cancelProduce()
	c.producer, c.produceCtx = cl, produceCtx
	if err := c.followSchemas(ctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	httpLn, err := c.listen("tcp", c.cfg.HTTPAddr)
	if err != nil {
		cl.Close()
		return fmt.Errorf("listen %s: %w", c.cfg.HTTPAddr, err)
	}
	var grpcLn net.Listener
	if c.cfg.GRPCAddr != "" {
		if grpcLn, err = c.listen("tcp", c.cfg.GRPCAddr); err != nil {
			httpLn.Close()
			cl.Close()
			return fmt.Errorf("listen %s: %w", c.cfg.GRPCAddr, err)
		}
	}
	httpSrv := &http.Server{
		Handler:           c.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       c.cfg.HTTPReadTimeout,
		// A POST waits for the budget and for Kafka before it answers.
		WriteTimeout:   c.cfg.HTTPReadTimeout + c.cfg.InflightWait + c.cfg.AckTimeout + c.cfg.WriteTimeout,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
	}
	grpcSrv := grpc.NewServer(grpc.MaxRecvMsgSize(c.cfg.MaxRequestBytes))
	pb.RegisterEventServiceServer(grpcSrv, grpcService{c: c})

	errc := make(chan error, 2)
	go func() {
		if err := httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	addr := httpLn.Addr().String()
	c.httpAddr.Store(&addr)
	if grpcLn != nil {
		go func() {
			if err := grpcSrv.Serve(grpcLn); err != nil {
				errc <- fmt.Errorf("grpc server: %w", err)
			}
		}()
		gaddr := grpcLn.Addr().String()
		c.grpcAddr.Store(&gaddr)
	}
	close(c.ready)
	c.setHealth("")
	c.log.Info("collector serving", "http", addr, "grpc", c.GRPCAddr(), "topic_pattern", c.cfg.TopicPattern,
		"fire_and_forget", c.cfg.FireAndForget)
	if c.cfg.FireAndForget {
		c.log.Warn("fire-and-forget mode: batches are acked before Kafka has them; failures show only in metrics")
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		c.log.Error("server failed; shutting down", "err", runErr)
	}
	c.shutdown(httpSrv, grpcSrv)
	return runErr
}

func (c *Collector) producerOpts() []kgo.Opt {
	// acks=all (in Producer.Opts) and idempotence (franz-go's default, kept) make an ack mean durable.
	return append(c.cfg.Producer.Opts(),
		// The in-flight budget binds first; these only keep Produce from ever blocking.
		kgo.MaxBufferedRecords(int(c.cfg.MaxInflightBytes/recordOverhead)+c.cfg.MaxBatchEvents),
		kgo.MaxBufferedBytes(int(2*c.cfg.MaxInflightBytes)),
		kgo.RecordDeliveryTimeout(max(c.cfg.AckTimeout, time.Second)), // franz-go's minimum is 1s
	)
}

// followSchemas puts the schema version in force (read from the schema topic unless the
// composition root gave one), creates its topics with CreateTopics, and follows later versions:
// each new type gets its topics first, then the collector routes it to them.
func (c *Collector) followSchemas(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, c.cfg.StartupTimeout)
	defer cancel()
	if c.schemas == nil || c.cfg.CreateTopics {
		if err := kafka.WaitForBrokers(sctx, c.producer); err != nil {
			return err
		}
	}
	// ctx, not sctx: the follower lives as long as Run.
	live, err := schemastore.Open(ctx, c.schemas, kafka.ClientOpts(c.cfg.Kafka, c.log, nil, ""), c.cfg.SchemasTopic, c.log, c.reg, "clickstream_collector")
	if err != nil {
		return err
	}
	c.schemas = live
	current := live.Subscribe(ctx, func(r *registry.Registry) {
		if c.cfg.CreateTopics {
			tctx, cancel := context.WithTimeout(context.Background(), c.cfg.StartupTimeout)
			defer cancel()
			if err := c.ensureTopics(tctx, r); err != nil {
				// The push created them; if not, the new type's batches are answered with an
				// error until they exist, never acked and lost.
				c.log.Error("topics of a new schema version", "version", r.Version(), "err", err)
			}
		}
		c.types.Store(c.newTypeTable(r))
		c.log.Info("routing the event types of a new schema version", "version", r.Version(), "types", r.String())
	})
	if c.cfg.CreateTopics {
		if err := c.ensureTopics(sctx, current); err != nil {
			return err
		}
	}
	c.types.Store(c.newTypeTable(current))
	return nil
}

// ensureTopics creates the contract's missing topics for the types of reg.
func (c *Collector) ensureTopics(ctx context.Context, reg *registry.Registry) error {
	topics := kafka.ContractTopics(c.cfg.TopicPattern, kafka.DefaultDLQTopic, reg.Names())
	slices.Sort(topics)
	topics = slices.Compact(topics)
	if err := kafka.EnsureTopics(ctx, c.producer, c.cfg.Topics, topics...); err != nil {
		return err
	}
	c.log.Info("kafka reachable, contract topics present", "topics", len(topics))
	return nil
}

func (c *Collector) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/events", c.serveWebSocket)
	mux.HandleFunc("POST /api/v1/events", c.serveHTTP)
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "pong") })
	return mux
}

// shutdown is the lame-duck sequence, bounded by most of ShutdownTimeout so that Run returns
// before run.Serve gives up on it.
func (c *Collector) shutdown(httpSrv *http.Server, grpcSrv *grpc.Server) {
	deadline := c.cfg.ShutdownTimeout * 9 / 10
	sctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	c.setHealth("shutting down")
	c.draining.Store(true)
	c.log.Info("shutting down: readiness off, listeners closing, draining in-flight batches",
		"websockets", c.conns.live(), "deadline", deadline)

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := httpSrv.Shutdown(sctx); err != nil {
			_ = httpSrv.Close()
		}
	})
	wg.Go(func() {
		stopped := make(chan struct{})
		go func() { grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			grpcSrv.Stop()
		}
	})
	wg.Go(func() { c.drainWebSockets(sctx) })
	wg.Wait()

	// Records of fire-and-forget or timed-out batches may still be buffered.
	if err := c.producer.Flush(sctx); err != nil {
		c.log.Warn("producer not flushed before the deadline", "err", err, "buffered_records", c.producer.BufferedProduceRecords())
	}
	c.producer.Close()
	used, _ := c.budget.stats()
	c.log.Info("collector drained: acks sent, producer flushed and closed", "inflight_bytes_left", used)
}

// drainWebSockets stops every WebSocket's reader, lets its writer send the acks still in
// flight and then close with 1001; at the deadline the rest are cut.
func (c *Collector) drainWebSockets(ctx context.Context) {
	conns := c.conns.shut()
	for _, w := range conns {
		w.shutdown()
	}
	done := make(chan struct{})
	go func() { c.wsWG.Wait(); close(done) }()
	select {
	case <-done:
		c.log.Info("websockets closed with 1001 after their acks", "count", len(conns))
		return
	case <-ctx.Done():
	}
	close(c.kill)
	for _, w := range c.conns.shut() {
		_ = w.conn.NetConn().Close()
	}
	<-done
	c.log.Warn("websockets cut at the shutdown deadline", "count", len(conns))
}

// buffer returns a pooled buffer for one frame or body; putBuffer gives it back.
func (c *Collector) buffer() *bytes.Buffer {
	if b, ok := c.bufs.Get().(*bytes.Buffer); ok {
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (c *Collector) putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 { // do not keep the rare huge buffer
		c.bufs.Put(b)
	}
}
