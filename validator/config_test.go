package validator

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
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
		{"two %s", func(c *Config) { c.RawTopicPattern = "%s-%s" }, `raw_topic_pattern: must contain %s at most once, got "%s-%s"`},
		{"illegal topic", func(c *Config) { c.RawTopicPattern = "raw/%s" }, `raw_topic_pattern: does not make legal topic names: "raw/%s"`},
		{"pattern eats the DLQ", func(c *Config) { c.RawTopicPattern = "clickstream-%s" },
			"raw_topic_pattern: matches the output topic clickstream-dlq: the validator would consume its own output"},
		{"pattern eats valid topics", func(c *Config) { c.RawTopicPattern = "clickstream-%s-valid" },
			"raw_topic_pattern: matches the output topic clickstream-page_view-valid: the validator would consume its own output"},
		{"bad dlq", func(c *Config) { c.DLQTopic = "" }, `dlq_topic: not a legal topic name: ""`},
		{"no group", func(c *Config) { c.Group = " " }, "group: is required"},
		{"no transactional id", func(c *Config) { c.TransactionalID = "" }, "transactional_id: is required"},
		{"long instance id", func(c *Config) { c.InstanceID = strings.Repeat("x", 300) }, "instance_id: transactional id"},
		{"zero txn timeout", func(c *Config) { c.TransactionTimeout = 0 }, "transaction_timeout: must be a positive duration, got 0s"},
		{"zero session timeout", func(c *Config) { c.SessionTimeout = 0 }, "session_timeout: must be a positive duration, got 0s"},
		{"zero metadata age", func(c *Config) { c.MetadataMaxAge = 0 }, "metadata_max_age: must be a positive duration, got 0s"},
		{"zero poll", func(c *Config) { c.MaxPollRecords = 0 }, "max_poll_records: must be positive, got 0"},
		{"zero event bytes", func(c *Config) { c.MaxEventBytes = 0 }, "max_event_bytes: must be positive, got 0"},
		{"event bytes over batch", func(c *Config) { c.MaxEventBytes = 1 << 20 }, "max_event_bytes: must leave 8192 bytes for key and headers below producer.batch_max_bytes (1048576), got 1048576"},
		{"bad decoder", func(c *Config) { c.Decoder = "fast" }, `decoder: must be one of auto, generated, hyperpb, got "fast"`},
		{"zero partitions", func(c *Config) { c.Topics.Partitions = 0 }, "topic.partitions: must be positive, got 0"},
		{"zero replication", func(c *Config) { c.Topics.ReplicationFactor = 0 }, "topic.replication_factor: must be positive or -1 (broker default), got 0"},
		{"zero startup", func(c *Config) { c.StartupTimeout = 0 }, "startup_timeout: must be a positive duration, got 0s"},
		{"bad compression", func(c *Config) { c.Producer.Compression = "gzip" }, `producer.compression: must be one of zstd, lz4, snappy, none, got "gzip"`},
		{"negative linger", func(c *Config) { c.Producer.Linger = -time.Second }, "producer.linger: must not be negative, got -1s"},
		{"zero batch", func(c *Config) { c.Producer.BatchMaxBytes = 0 }, "producer.batch_max_bytes: must be positive, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestTopicsNotCreatedNeedNoTopicSettings(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CreateTopics = false
	cfg.Topics.Partitions = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTransactionalID(t *testing.T) {
	cfg := DefaultConfig()
	cfg.InstanceID = "validator-0"
	if got := cfg.transactionalID(); got != "clickstream-validator-validator-0" {
		t.Errorf("transactional id %q", got)
	}
	cfg.InstanceID = ""
	if got := cfg.transactionalID(); got != "clickstream-validator" {
		t.Errorf("transactional id without instance %q", got)
	}
}

func TestRawTopicRegex(t *testing.T) {
	tests := []struct {
		pattern, topic, want string
		match                bool
	}{
		{kafka.DefaultRawTopicPattern, "clickstream-page_view-log", "page_view", true},
		{kafka.DefaultRawTopicPattern, "clickstream-unknown-log", kafka.UnknownType, true},
		{kafka.DefaultRawTopicPattern, "clickstream-page_view-valid", "", false},
		{kafka.DefaultRawTopicPattern, "clickstream-dlq", "", false},
		{"events.%s.raw", "events.click.raw", "click", true},
		{"events.%s.raw", "eventsXclickXraw", "", false},
		{"all-events", "all-events", "", true},
		{"all-events", "all-events-2", "", false},
	}
	for _, tt := range tests {
		sm := regexp.MustCompile(rawTopicRegex(tt.pattern)).FindStringSubmatch(tt.topic)
		if (sm != nil) != tt.match || (sm != nil && sm[1] != tt.want) {
			t.Errorf("%s on %s: %q, want %v %q", tt.pattern, tt.topic, sm, tt.match, tt.want)
		}
	}
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Kafka.Brokers = nil
	cfg.ShutdownTimeout = -time.Second
	err := cfg.Validate()
	if err == nil || len(strings.Split(err.Error(), "\n")) != 2 {
		t.Fatalf("want two problems, got %v", err)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := map[string]string{
		EnvPrefix + "KAFKA_BROKERS":            "a:1, b:2",
		EnvPrefix + "SHUTDOWN_TIMEOUT":         "7s",
		EnvPrefix + "LOG_LEVEL":                "debug",
		EnvPrefix + "RAW_TOPIC_PATTERN":        "events.%s.raw",
		EnvPrefix + "DLQ_TOPIC":                "events.dlq",
		EnvPrefix + "GROUP":                    "g",
		EnvPrefix + "TRANSACTIONAL_ID":         "tx",
		EnvPrefix + "INSTANCE_ID":              "pod-1",
		EnvPrefix + "TRANSACTION_TIMEOUT":      "20s",
		EnvPrefix + "SESSION_TIMEOUT":          "9s",
		EnvPrefix + "METADATA_MAX_AGE":         "2s",
		EnvPrefix + "MAX_POLL_RECORDS":         "500",
		EnvPrefix + "MAX_EVENT_BYTES":          "4096",
		EnvPrefix + "DECODER":                  "hyperpb",
		EnvPrefix + "CREATE_TOPICS":            "false",
		EnvPrefix + "TOPIC_PARTITIONS":         "12",
		EnvPrefix + "TOPIC_REPLICATION_FACTOR": "3",
		EnvPrefix + "STARTUP_TIMEOUT":          "1m",
		EnvPrefix + "PRODUCER_COMPRESSION":     "lz4",
		EnvPrefix + "PRODUCER_LINGER":          "0s",
		EnvPrefix + "PRODUCER_BATCH_MAX_BYTES": "2000000",
	}
	cfg := DefaultConfig()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.FromLookup(&cfg, EnvPrefix, lookup); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "a:1,b:2" {
		t.Errorf("brokers = %q", got)
	}
	if cfg.ShutdownTimeout != 7*time.Second || cfg.Telemetry.LogLevel != "debug" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	want := DefaultConfig()
	want.Kafka.Brokers = []string{"a:1", "b:2"}
	want.ShutdownTimeout = 7 * time.Second
	want.Telemetry.LogLevel = "debug"
	want.RawTopicPattern, want.DLQTopic, want.Group = "events.%s.raw", "events.dlq", "g"
	want.TransactionalID, want.InstanceID = "tx", "pod-1"
	want.TransactionTimeout, want.SessionTimeout, want.MetadataMaxAge = 20*time.Second, 9*time.Second, 2*time.Second
	want.MaxPollRecords, want.MaxEventBytes, want.Decoder = 500, 4096, DecoderHyperPB
	want.CreateTopics, want.Topics = false, kafka.Topics{Partitions: 12, ReplicationFactor: 3}
	want.StartupTimeout = time.Minute
	want.Producer = kafka.Producer{Compression: "lz4", Linger: 0, BatchMaxBytes: 2000000}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config from environment\n got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("overridden config does not validate: %v", err)
	}
	for _, v := range config.Vars(DefaultConfig(), EnvPrefix) {
		if v.Doc == "" {
			t.Errorf("%s has no doc tag", v.Name)
		}
	}
	env[EnvPrefix+"SHUTDOWN_TIMEOUT"] = "soon"
	err := config.FromLookup(&cfg, EnvPrefix, lookup)
	if err == nil || !strings.Contains(err.Error(), EnvPrefix+`SHUTDOWN_TIMEOUT="soon": not a duration`) {
		t.Fatalf("bad duration not reported: %v", err)
	}
}
