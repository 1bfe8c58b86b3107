package collector

import (
	"strings"
	"testing"
	"time"

	"github.com/clickstream/clickstream/services/config"
)

func TestDefaultConfigValidates(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestInvalidConfigs(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no brokers", func(c *Config) { c.Kafka.Brokers = nil }, "kafka.brokers: at least one broker is required"},
		{"bad broker", func(c *Config) { c.Kafka.Brokers = []string{"nohost"} }, `kafka.brokers: not a host:port address: "nohost"`},
		{"bad log level", func(c *Config) { c.Telemetry.LogLevel = "loud" }, `telemetry.log_level: must be one of debug, info, warn, error, got "loud"`},
		{"zero shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout: must be a positive duration, got 0s"},
		{"no http addr", func(c *Config) { c.HTTPAddr = "" }, "http_addr: is required"},
		{"bad http addr", func(c *Config) { c.HTTPAddr = "8080" }, `http_addr: not a host:port address: "8080"`},
		{"bad grpc addr", func(c *Config) { c.GRPCAddr = "localhost" }, `grpc_addr: not a host:port address: "localhost"`},
		{"no conn id header", func(c *Config) { c.ConnIDHeader = "" }, "conn_id_header: is required"},
		{"bad conn id header", func(c *Config) { c.ConnIDHeader = "X User" }, `conn_id_header: not a header name: "X User"`},
		{"bad conn group header", func(c *Config) { c.ConnGroupHeader = "X:Group" }, `conn_group_header: not a header name: "X:Group"`},
		{"long default group", func(c *Config) { c.ConnGroupDefault = strings.Repeat("g", 300) }, "conn_group_default: must be at most 256 bytes"},
		{"zero max connections", func(c *Config) { c.MaxConnections = 0 }, "max_connections: must be positive, got 0"},
		{"zero max request", func(c *Config) { c.MaxRequestBytes = 0 }, "max_request_bytes: must be positive, got 0"},
		{"zero max batch", func(c *Config) { c.MaxBatchEvents = 0; c.RateLimit = 0 }, "max_batch_events: must be positive, got 0"},
		{"zero max event", func(c *Config) { c.MaxEventBytes = 0 }, "max_event_bytes: must be positive, got 0"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "rate_limit: must not be negative, got -1"},
		{"small burst", func(c *Config) { c.RateBurst = 10 }, "rate_burst: must hold the largest batch (max_batch_events=10000), got 10"},
		{"zero ping", func(c *Config) { c.PingInterval = 0 }, "ping_interval: must be a positive duration, got 0s"},
		{"zero read timeout", func(c *Config) { c.ReadTimeout = 0 }, "read_timeout: must be a positive duration, got 0s"},
		{"read timeout below ping", func(c *Config) { c.ReadTimeout = 10 * time.Second }, "read_timeout: must exceed ping_interval (30s), got 10s"},
		{"zero write timeout", func(c *Config) { c.WriteTimeout = 0 }, "write_timeout: must be a positive duration, got 0s"},
		{"zero http read timeout", func(c *Config) { c.HTTPReadTimeout = 0 }, "http_read_timeout: must be a positive duration, got 0s"},
		{"zero ws read buffer", func(c *Config) { c.WSReadBufferSize = 0 }, "ws_read_buffer_size: must be positive, got 0"},
		{"zero ws write buffer", func(c *Config) { c.WSWriteBufferSize = 0 }, "ws_write_buffer_size: must be positive, got 0"},
		{"zero inflight bytes", func(c *Config) { c.MaxInflightBytes = 0 }, "max_inflight_bytes: must be positive, got 0"},
		{"inflight below request", func(c *Config) { c.MaxInflightBytes = 1000 }, "max_inflight_bytes: must hold one largest request (max_request_bytes=4194304), got 1000"},
		{"zero inflight wait", func(c *Config) { c.InflightWait = 0 }, "inflight_wait: must be a positive duration, got 0s"},
		{"negative burst", func(c *Config) { c.RateLimit = 0; c.RateBurst = -1 }, "rate_burst: must not be negative, got -1"},
		{"huge inflight per conn", func(c *Config) { c.MaxInflightPerConn = 1 << 20 }, "max_inflight_per_conn: must be at most 4096, got 1048576"},
		{"zero inflight per conn", func(c *Config) { c.MaxInflightPerConn = 0 }, "max_inflight_per_conn: must be positive, got 0"},
		{"zero ack timeout", func(c *Config) { c.AckTimeout = 0 }, "ack_timeout: must be a positive duration, got 0s"},
		{"no topic pattern", func(c *Config) { c.TopicPattern = "" }, "topic_pattern: is required"},
		{"illegal topic pattern", func(c *Config) { c.TopicPattern = "events/%s" }, `topic_pattern: makes illegal topic names (only one %s, then [a-zA-Z0-9._-]): "events/%s"`},
		{"two placeholders", func(c *Config) { c.TopicPattern = "%s-%s" }, `topic_pattern: makes illegal topic names (only one %s, then [a-zA-Z0-9._-]): "%s-%s"`},
		{"long topic pattern", func(c *Config) { c.TopicPattern = strings.Repeat("t", 200) + "%s" }, "topic_pattern: makes topic names longer than 249 characters"},
		{"zero partitions", func(c *Config) { c.Topics.Partitions = 0 }, "topics.partitions: must be positive, got 0"},
		{"zero replication", func(c *Config) { c.Topics.ReplicationFactor = 0 }, "topics.replication_factor: must be positive or -1 (broker default), got 0"},
		{"zero startup timeout", func(c *Config) { c.StartupTimeout = 0 }, "startup_timeout: must be a positive duration, got 0s"},
		{"bad compression", func(c *Config) { c.Producer.Compression = "gzip" }, `producer.compression: must be one of zstd, lz4, snappy, none, got "gzip"`},
		{"negative linger", func(c *Config) { c.Producer.Linger = -time.Millisecond }, "producer.linger: must not be negative, got -1ms"},
		{"small batch max", func(c *Config) { c.Producer.BatchMaxBytes = 1000000 }, "producer.batch_max_bytes: must hold the largest event plus 8192 bytes of key and headers (max_event_bytes=1000000), got 1000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Validate() = %v, want exactly %q", err, tt.want)
			}
		})
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = nil
	cfg.ShutdownTimeout = -time.Second
	cfg.MaxConnections = 0
	cfg.Producer.Compression = "gzip"
	err := cfg.Validate()
	if err == nil || len(strings.Split(err.Error(), "\n")) != 4 {
		t.Fatalf("want four problems, got %v", err)
	}
}

// TestTopicsNotCheckedWhenNotCreated: topic creation settings matter only with CreateTopics.
func TestTopicsNotCheckedWhenNotCreated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CreateTopics = false
	cfg.Topics.Partitions = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := map[string]string{
		EnvPrefix + "KAFKA_BROKERS":        "a:1, b:2",
		EnvPrefix + "SHUTDOWN_TIMEOUT":     "7s",
		EnvPrefix + "LOG_LEVEL":            "debug",
		EnvPrefix + "HTTP_ADDR":            "0.0.0.0:9000",
		EnvPrefix + "MAX_INFLIGHT_BYTES":   "1073741824",
		EnvPrefix + "RATE_LIMIT":           "2.5",
		EnvPrefix + "PRODUCER_COMPRESSION": "lz4",
		EnvPrefix + "TOPIC_PARTITIONS":     "12",
		EnvPrefix + "FIRE_AND_FORGET":      "true",
	}
	cfg := DefaultConfig()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.FromLookup(&cfg, EnvPrefix, lookup); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "a:1,b:2" {
		t.Errorf("brokers = %q", got)
	}
	if cfg.ShutdownTimeout != 7*time.Second || cfg.Telemetry.LogLevel != "debug" || cfg.HTTPAddr != "0.0.0.0:9000" ||
		cfg.MaxInflightBytes != 1<<30 || cfg.RateLimit != 2.5 || cfg.Producer.Compression != "lz4" || cfg.Topics.Partitions != 12 || !cfg.FireAndForget {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	env[EnvPrefix+"SHUTDOWN_TIMEOUT"] = "soon"
	err := config.FromLookup(&cfg, EnvPrefix, lookup)
	if err == nil || !strings.Contains(err.Error(), EnvPrefix+`SHUTDOWN_TIMEOUT="soon": not a duration`) {
		t.Fatalf("bad duration not reported: %v", err)
	}
}

func TestEveryVariableDocumented(t *testing.T) {
	for _, v := range config.Vars(DefaultConfig(), EnvPrefix) {
		if v.Doc == "" {
			t.Errorf("%s has no doc tag", v.Name)
		}
	}
}

func TestRaccoonEnv(t *testing.T) {
	env := map[string]string{
		"SERVER_WEBSOCKET_PORT":                    "8088",
		"SERVER_GRPC_PORT":                         "8089",
		"SERVER_WEBSOCKET_MAX_CONN":                "500",
		"SERVER_WEBSOCKET_CONN_ID_HEADER":          "X-Device",
		"SERVER_WEBSOCKET_CONN_GROUP_HEADER":       "X-Team",
		"SERVER_WEBSOCKET_PING_INTERVAL_MS":        "10000",
		"SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS":   "20000",
		"EVENT_DISTRIBUTION_PUBLISHER_PATTERN":     "events-%s",
		"EVENT_ACK":                                "1",
		"PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
		"PUBLISHER_KAFKA_CLIENT_LINGER_MS":         "20",
		// Ours wins over Raccoon's for the same setting.
		EnvPrefix + "CONN_ID_HEADER":    "X-Ours",
		EnvPrefix + "CONN_GROUP_HEADER": "X-Our-Group",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg := DefaultConfig()
	if err := config.FromLookup(&cfg, EnvPrefix, lookup); err != nil {
		t.Fatal(err)
	}
	if err := RaccoonEnv(&cfg, lookup); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8088" || cfg.GRPCAddr != ":8089" || cfg.MaxConnections != 500 || cfg.PingInterval != 10*time.Second ||
		cfg.ReadTimeout != 20*time.Second || cfg.TopicPattern != "events-%s" || cfg.FireAndForget ||
		strings.Join(cfg.Kafka.Brokers, ",") != "k1:9092,k2:9092" || cfg.Producer.Linger != 20*time.Millisecond {
		t.Errorf("Raccoon variables not applied: %+v", cfg)
	}
	if cfg.ConnIDHeader != "X-Ours" || cfg.ConnGroupHeader != "X-Our-Group" {
		t.Errorf("COLLECTOR_ variables must win: id header %q, group header %q", cfg.ConnIDHeader, cfg.ConnGroupHeader)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Raccoon configuration does not validate: %v", err)
	}

	env["EVENT_ACK"] = "0"
	if err := RaccoonEnv(&cfg, lookup); err != nil || !cfg.FireAndForget {
		t.Errorf("EVENT_ACK=0 must turn fire-and-forget on: %v", err)
	}
	env["EVENT_ACK"] = "maybe"
	env["SERVER_WEBSOCKET_PORT"] = "http"
	err := RaccoonEnv(&cfg, lookup)
	if err == nil || !strings.Contains(err.Error(), `EVENT_ACK: "maybe": must be 0`) || !strings.Contains(err.Error(), `SERVER_WEBSOCKET_PORT: "http": not a port number`) {
		t.Errorf("bad Raccoon values not reported: %v", err)
	}
}
