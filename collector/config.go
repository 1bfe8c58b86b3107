package collector

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// EnvPrefix prefixes every environment variable of the collector.
const EnvPrefix = "COLLECTOR_"

// Config is the whole configuration of the collector. Every field can be set from the environment
// (COLLECTOR_ + the env tag; Raccoon's variable names are honoured too, see RaccoonEnv).
type Config struct {
	Telemetry telemetry.Config `envPrefix:""`
	Kafka     kafka.Config     `envPrefix:"KAFKA_"`
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM: readiness off, listeners closed,
	// in-flight batches acked, WebSockets closed with 1001, producer flushed.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" doc:"deadline of the graceful shutdown after SIGTERM"`

	// HTTPAddr serves WebSocket and HTTP POST on /api/v1/events and GET /ping (Raccoon's
	// SERVER_WEBSOCKET_PORT). The default listens on loopback only; in a container use 0.0.0.0:8080.
	HTTPAddr string `env:"HTTP_ADDR" doc:"listen address of WebSocket + HTTP (/api/v1/events, /ping); 0.0.0.0:8080 in containers"`
	// GRPCAddr serves raystack.raccoon.v1beta1.EventService on its own port (Raccoon's
	// SERVER_GRPC_PORT). Empty turns gRPC off.
	GRPCAddr string `env:"GRPC_ADDR" doc:"listen address of gRPC EventService/SendEvent (empty: off); 0.0.0.0:8081 in containers"`

	// ConnIDHeader names the header (gRPC: metadata key) carrying the connection id, which is
	// the record key and half of a WebSocket's identity (SERVER_WEBSOCKET_CONN_ID_HEADER).
	ConnIDHeader string `env:"CONN_ID_HEADER" doc:"header carrying the connection id (record key)"`
	// ConnGroupHeader names the optional header carrying the connection group
	// (SERVER_WEBSOCKET_CONN_GROUP_HEADER). Empty: no groups.
	ConnGroupHeader string `env:"CONN_GROUP_HEADER" doc:"header carrying the optional connection group (empty: none)"`
	// ConnGroupDefault is the group of a WebSocket that sends none, for the uniqueness of
	// (id, group) only; the conn_group record header carries what the client sent
	// (SERVER_WEBSOCKET_CONN_GROUP_DEFAULT).
	ConnGroupDefault string `env:"CONN_GROUP_DEFAULT" doc:"group of a WebSocket without group header, for uniqueness"`
	// MaxConnections caps open WebSockets; one more is refused with code 4 and close 1008
	// (SERVER_WEBSOCKET_MAX_CONN).
	MaxConnections int `env:"MAX_CONNECTIONS" doc:"maximum open WebSocket connections"`
	// CheckOrigin refuses a WebSocket handshake whose Origin header is not the request's host
	// (gorilla's same-host check; no Origin passes), as Raccoon's SERVER_WEBSOCKET_CHECK_ORIGIN.
	CheckOrigin bool `env:"CHECK_ORIGIN" doc:"refuse WebSocket handshakes from another Origin host"`

	// MaxRequestBytes caps one WebSocket frame, HTTP body or gRPC message. A larger WebSocket
	// frame gets a BAD_REQUEST reply and close 1009; a larger HTTP body gets 413.
	MaxRequestBytes int `env:"MAX_REQUEST_BYTES" doc:"maximum bytes of one WebSocket frame, HTTP body or gRPC message"`
	// MaxBatchEvents caps the events of one batch (BAD_REQUEST beyond).
	MaxBatchEvents int `env:"MAX_BATCH_EVENTS" doc:"maximum events in one batch"`
	// MaxEventBytes caps one event's event_bytes (BAD_REQUEST beyond). Kafka refuses records
	// over the topic's max.message.bytes, so keep it below that and below ProducerBatchMaxBytes.
	MaxEventBytes int `env:"MAX_EVENT_BYTES" doc:"maximum bytes of one event's event_bytes (below Kafka's max.message.bytes)"`
	// RateLimit is the sustained events per second one WebSocket may send (token bucket,
	// BAD_REQUEST "rate limit" beyond); 0 turns it off. HTTP and gRPC are bounded by the in-flight
	// budget only.
	RateLimit float64 `env:"RATE_LIMIT" doc:"events per second per WebSocket connection (0: unlimited)"`
	// RateBurst is the token bucket's size in events; it must hold the largest batch.
	RateBurst int `env:"RATE_BURST" doc:"burst of the per-connection rate limit, in events (>= MAX_BATCH_EVENTS)"`

	// PingInterval is how often the server pings each WebSocket (SERVER_WEBSOCKET_PING_INTERVAL_MS).
	PingInterval time.Duration `env:"PING_INTERVAL" doc:"interval of server pings on each WebSocket"`
	// ReadTimeout closes a WebSocket that sent no frame at all (data, ping or pong) for this
	// long (SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS); it must exceed PingInterval.
	ReadTimeout time.Duration `env:"READ_TIMEOUT" doc:"close a WebSocket silent for this long (any frame resets it); > PING_INTERVAL"`
	// WriteTimeout bounds one write to a client (ack, ping, close). A client that does not read
	// for this long is disconnected; it never delays other clients
	// (SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS).
	WriteTimeout time.Duration `env:"WRITE_TIMEOUT" doc:"deadline of one write to a WebSocket client"`
	// HTTPReadTimeout bounds reading one HTTP request with its body (http.Server.ReadTimeout).
	HTTPReadTimeout time.Duration `env:"HTTP_READ_TIMEOUT" doc:"deadline to read one HTTP request including its body"`
	// WSReadBufferSize and WSWriteBufferSize are gorilla's I/O buffer sizes, not limits
	// (SERVER_WEBSOCKET_READ_BUFFER_SIZE / _WRITE_BUFFER_SIZE). Write buffers are pooled.
	WSReadBufferSize  int `env:"WS_READ_BUFFER_SIZE" doc:"WebSocket read buffer size in bytes (I/O buffer, not a limit)"`
	WSWriteBufferSize int `env:"WS_WRITE_BUFFER_SIZE" doc:"WebSocket write buffer size in bytes (pooled)"`

	// MaxInflightBytes is the memory budget of batches handed to Kafka and not yet acknowledged
	// (event bytes plus key, headers and a per-record overhead). When it is full, WebSocket
	// reading stops (TCP backpressure) and HTTP/gRPC requests wait, for at most InflightWait.
	// It also sizes franz-go's MaxBufferedBytes/MaxBufferedRecords.
	MaxInflightBytes int64 `env:"MAX_INFLIGHT_BYTES" doc:"budget of bytes produced to Kafka and not yet acknowledged"`
	// InflightWait is how long a batch may wait for room in the budget; then it is answered
	// INTERNAL_ERROR "overloaded".
	InflightWait time.Duration `env:"INFLIGHT_WAIT" doc:"longest wait for in-flight budget before INTERNAL_ERROR overloaded"`
	// MaxInflightPerConn caps the batches of one WebSocket that are not acked yet; the reader
	// stops reading that connection at the cap.
	MaxInflightPerConn int `env:"MAX_INFLIGHT_PER_CONN" doc:"unacked batches per WebSocket before reading pauses"`
	// AckTimeout is how long a batch waits for Kafka's acknowledgement of all its events
	// before it is answered INTERNAL_ERROR; also franz-go's RecordDeliveryTimeout
	// (delivery.timeout.ms).
	AckTimeout time.Duration `env:"ACK_TIMEOUT" doc:"wait for Kafka's acknowledgement before INTERNAL_ERROR (delivery.timeout.ms)"`
	// FireAndForget acks a batch as soon as its events are buffered in the producer, before
	// Kafka has them: acks may then be lies and failures only show in metrics (Raccoon's
	// EVENT_ACK=0). Off by default.
	FireAndForget bool `env:"FIRE_AND_FORGET" doc:"ack before Kafka has the events (acks can lie; Raccoon EVENT_ACK=0)"`

	// TopicPattern names the raw topics: its first %s is replaced by the event type
	// (EVENT_DISTRIBUTION_PUBLISHER_PATTERN). Types not in the registry go to the pattern with
	// "unknown".
	TopicPattern string `env:"TOPIC_PATTERN" doc:"raw topic pattern; first %s = event type"`
	// CreateTopics creates the contract's topics (kafka.ContractTopics) at start-up if they are
	// missing. Convenient for local stacks; turn it off where topics are managed elsewhere.
	// Producing never creates topics.
	CreateTopics bool `env:"CREATE_TOPICS" doc:"create missing contract topics at start-up"`
	// Topics is how CreateTopics creates topics.
	Topics kafka.Topics `envPrefix:"TOPIC_"`
	// StartupTimeout bounds waiting for Kafka and creating topics at start-up.
	StartupTimeout time.Duration `env:"STARTUP_TIMEOUT" doc:"wait for Kafka and topic creation at start-up"`
	// Producer tunes the Kafka producer (acks=all and idempotence are fixed).
	Producer kafka.Producer `envPrefix:"PRODUCER_"`
	// SchemasTopic is the schema topic the collector follows: a type pushed while it runs is
	// routed to its own raw topic as soon as the version is read (with CreateTopics, once its
	// topics exist), without a restart.
	SchemasTopic string `env:"SCHEMAS_TOPIC" doc:"schema topic to follow (clickstream schemas push writes it)"`
}

// DefaultConfig is a configuration that works against a local stack.
func DefaultConfig() Config {
	return Config{
		Telemetry:       telemetry.DefaultConfig("127.0.0.1:9100"),
		Kafka:           kafka.DefaultConfig("clickstream-collector"),
		ShutdownTimeout: 30 * time.Second,

		HTTPAddr:         "127.0.0.1:8080",
		GRPCAddr:         "127.0.0.1:8081",
		ConnIDHeader:     "X-User-ID",
		ConnGroupHeader:  "X-User-Group",
		ConnGroupDefault: "--default--",
		MaxConnections:   30000,
		CheckOrigin:      true,

		MaxRequestBytes: 4 << 20,
		MaxBatchEvents:  10000,
		MaxEventBytes:   1000000,
		RateLimit:       10000,
		RateBurst:       20000,

		PingInterval:      30 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      5 * time.Second,
		HTTPReadTimeout:   30 * time.Second,
		WSReadBufferSize:  4096,
		WSWriteBufferSize: 4096,

		MaxInflightBytes:   64 << 20,
		InflightWait:       5 * time.Second,
		MaxInflightPerConn: 32,
		AckTimeout:         8 * time.Second,

		TopicPattern:   kafka.DefaultRawTopicPattern,
		CreateTopics:   true,
		Topics:         kafka.Topics{Partitions: 3, ReplicationFactor: -1},
		StartupTimeout: 60 * time.Second,
		SchemasTopic:   schemastore.DefaultTopic,
		Producer: kafka.Producer{
			Compression:   "zstd",
			Linger:        5 * time.Millisecond,
			BatchMaxBytes: 1 << 20,
		},
	}
}

// maxIdentityBytes caps the connection id and group; maxReqGUIDBytes caps req_guid. Each is
// copied into every record's headers, so they must stay small.
const (
	maxIdentityBytes = 256
	maxReqGUIDBytes  = 128
	// recordOverhead is added per record to the in-flight budget for the structures around the
	// bytes (kgo.Record, header slices, promise bookkeeping).
	recordOverhead = 256
	// recordHeaderSlack is what one record needs in a batch beyond its value: key, headers
	// and the record batch framing.
	recordHeaderSlack = 8 << 10
	// maxInflightPerConn bounds MaxInflightPerConn: each connection allocates queues that size.
	maxInflightPerConn = 4096
)

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var p config.Problems
	p.Merge("telemetry", c.Telemetry.Validate())
	p.Merge("kafka", c.Kafka.Validate())
	p.PositiveDuration("shutdown_timeout", c.ShutdownTimeout)

	hostPort(&p, "http_addr", c.HTTPAddr, true)
	hostPort(&p, "grpc_addr", c.GRPCAddr, false)
	headerName(&p, "conn_id_header", c.ConnIDHeader, true)
	headerName(&p, "conn_group_header", c.ConnGroupHeader, false)
	if len(c.ConnGroupDefault) > maxIdentityBytes {
		p.Addf("conn_group_default", "must be at most %d bytes", maxIdentityBytes)
	}
	p.Positive("max_connections", int64(c.MaxConnections))

	p.Positive("max_request_bytes", int64(c.MaxRequestBytes))
	p.Positive("max_batch_events", int64(c.MaxBatchEvents))
	p.Positive("max_event_bytes", int64(c.MaxEventBytes))
	if c.RateLimit < 0 {
		p.Addf("rate_limit", "must not be negative, got %g", c.RateLimit)
	}
	if c.RateBurst < 0 {
		p.Addf("rate_burst", "must not be negative, got %d", c.RateBurst)
	} else if c.RateLimit > 0 && c.RateBurst < c.MaxBatchEvents {
		p.Addf("rate_burst", "must hold the largest batch (max_batch_events=%d), got %d", c.MaxBatchEvents, c.RateBurst)
	}

	p.PositiveDuration("ping_interval", c.PingInterval)
	p.PositiveDuration("read_timeout", c.ReadTimeout)
	if c.ReadTimeout > 0 && c.ReadTimeout <= c.PingInterval {
		p.Addf("read_timeout", "must exceed ping_interval (%s), got %s", c.PingInterval, c.ReadTimeout)
	}
	p.PositiveDuration("write_timeout", c.WriteTimeout)
	p.PositiveDuration("http_read_timeout", c.HTTPReadTimeout)
	p.Positive("ws_read_buffer_size", int64(c.WSReadBufferSize))
	p.Positive("ws_write_buffer_size", int64(c.WSWriteBufferSize))

	p.Positive("max_inflight_bytes", c.MaxInflightBytes)
	if c.MaxInflightBytes > 0 && c.MaxRequestBytes > 0 && c.MaxInflightBytes < int64(c.MaxRequestBytes) {
		p.Addf("max_inflight_bytes", "must hold one largest request (max_request_bytes=%d), got %d", c.MaxRequestBytes, c.MaxInflightBytes)
	}
	p.PositiveDuration("inflight_wait", c.InflightWait)
	p.Positive("max_inflight_per_conn", int64(c.MaxInflightPerConn))
	if c.MaxInflightPerConn > maxInflightPerConn {
		p.Addf("max_inflight_per_conn", "must be at most %d, got %d", maxInflightPerConn, c.MaxInflightPerConn)
	}
	p.PositiveDuration("ack_timeout", c.AckTimeout)

	if err := checkTopicPattern(c.TopicPattern); err != nil {
		p.Add("topic_pattern", err)
	}
	if c.CreateTopics {
		if c.Topics.Partitions <= 0 {
			p.Addf("topics.partitions", "must be positive, got %d", c.Topics.Partitions)
		}
		if c.Topics.ReplicationFactor == 0 || c.Topics.ReplicationFactor < -1 {
			p.Addf("topics.replication_factor", "must be positive or -1 (broker default), got %d", c.Topics.ReplicationFactor)
		}
	}
	p.PositiveDuration("startup_timeout", c.StartupTimeout)

	p.Merge("producer", c.Producer.Validate())
	if int64(c.Producer.BatchMaxBytes) < int64(c.MaxEventBytes)+recordHeaderSlack {
		p.Addf("producer.batch_max_bytes", "must hold the largest event plus %d bytes of key and headers (max_event_bytes=%d), got %d",
			recordHeaderSlack, c.MaxEventBytes, c.Producer.BatchMaxBytes)
	}
	return p.Err()
}

func hostPort(p *config.Problems, path, addr string, required bool) {
	if addr == "" {
		if required {
			p.Required(path, addr)
		}
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		p.Addf(path, "not a host:port address: %q", addr)
	}
}

func headerName(p *config.Problems, path, name string, required bool) {
	if name == "" {
		if required {
			p.Required(path, name)
		}
		return
	}
	for _, r := range name {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			p.Addf(path, "not a header name: %q", name)
			return
		}
	}
}

// checkTopicPattern makes sure every legal event type makes a legal Kafka topic name: the
// longest type (63 characters) substituted must stay within 249 characters of [a-zA-Z0-9._-].
func checkTopicPattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("is required")
	}
	longest := kafka.RawTopic(pattern, strings.Repeat("x", 63))
	if len(longest) > 249 {
		return fmt.Errorf("makes topic names longer than 249 characters: %q", pattern)
	}
	for _, r := range longest {
		if !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("makes illegal topic names (only one %%s, then [a-zA-Z0-9._-]): %q", pattern)
		}
	}
	return nil
}
