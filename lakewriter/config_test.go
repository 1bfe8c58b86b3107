package lakewriter

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
		{"bad lake url", func(c *Config) { c.Lake.URL = "s3://bucket/x" }, `lake.url: lake url "s3://bucket/x": scheme must be file or hdfs`},
		{"bad metastore", func(c *Config) { c.Lake.MetastoreURI = "127.0.0.1:9083" }, `lake.metastore_uri: metastore uri "127.0.0.1:9083": want thrift://host:port`},
		{"bad database", func(c *Config) { c.Lake.Database = "Click-Stream" }, `lake.database: must be a lower-case Hive name matching ^[a-z_][a-z0-9_]{0,127}$, got "Click-Stream"`},
		{"no group", func(c *Config) { c.GroupID = " " }, "group_id: is required"},
		{"bad topics", func(c *Config) { c.Topics = "(" }, "topics: not a regular expression: error parsing regexp: missing closing ): `(`"},
		{"topics without type", func(c *Config) { c.Topics = "^clickstream-.*-valid$" }, `topics: needs a capture group for the event type, got "^clickstream-.*-valid$"`},
		{"no dlq", func(c *Config) { c.DLQTopic = "" }, "dlq_topic: is required"},
		{"no schemas topic", func(c *Config) { c.SchemasTopic = "" }, "schemas_topic: is required"},
		{"zero interval", func(c *Config) { c.RotateInterval = 0 }, "rotate_interval: must be a positive duration, got 0s"},
		{"zero page", func(c *Config) { c.PageSize = 0 }, "page_size: must be positive, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
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
		EnvPrefix + "KAFKA_BROKERS":      "a:1, b:2",
		EnvPrefix + "SHUTDOWN_TIMEOUT":   "7s",
		EnvPrefix + "LOG_LEVEL":          "debug",
		EnvPrefix + "LAKE_URL":           "hdfs://127.0.0.1:8020/warehouse",
		EnvPrefix + "LAKE_HDFS_USER":     "root",
		EnvPrefix + "LAKE_METASTORE_URI": "thrift://127.0.0.1:9083",
		EnvPrefix + "ROTATE_INTERVAL":    "30s",
		EnvPrefix + "FILE_SIZE":          "1000000",
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
	if cfg.Lake.URL != "hdfs://127.0.0.1:8020/warehouse" || cfg.Lake.HDFSUser != "root" || cfg.Lake.MetastoreURI != "thrift://127.0.0.1:9083" ||
		cfg.RotateInterval != 30*time.Second || cfg.FileSize != 1000000 {
		t.Errorf("lake overrides not applied: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("HDFS + metastore config does not validate: %v", err)
	}
	env[EnvPrefix+"SHUTDOWN_TIMEOUT"] = "soon"
	err := config.FromLookup(&cfg, EnvPrefix, lookup)
	if err == nil || !strings.Contains(err.Error(), EnvPrefix+`SHUTDOWN_TIMEOUT="soon": not a duration`) {
		t.Fatalf("bad duration not reported: %v", err)
	}
}
