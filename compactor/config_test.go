package compactor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clickstream/clickstream/services/config"
)

func TestDefaultConfigValidates(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestInvalidConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"bad log level", func(c *Config) { c.Telemetry.LogLevel = "loud" }, `telemetry.log_level: must be one of debug, info, warn, error, got "loud"`},
		{"zero shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout: must be a positive duration, got 0s"},
		{"bad lake url", func(c *Config) { c.Lake.URL = "s3://bucket/x" }, `lake.url: lake url "s3://bucket/x": scheme must be file or hdfs`},
		{"hdfs without metastore", func(c *Config) { c.Lake.URL = "hdfs://nn:8020/warehouse" },
			"lake.metastore_uri: is required for an HDFS lake: without a metastore a partition is swapped by an atomic directory exchange, which only a local file system has"},
		{"hidden table", func(c *Config) { c.Tables = []string{"_staging"} }, `tables: not a table name: "_staging"`},
		{"zero interval", func(c *Config) { c.Interval = 0 }, "interval: must be a positive duration, got 0s"},
		{"zero lateness", func(c *Config) { c.Lateness = 0 }, "lateness: must be a positive duration, got 0s"},
		{"negative lookback", func(c *Config) { c.Lookback = -time.Hour }, "lookback: must not be negative, got -1h0m0s"},
		{"lookback within lateness", func(c *Config) { c.Lookback = time.Hour }, "lookback: must be longer than lateness (2h0m0s) or 0, got 1h0m0s"},
		{"zero grace", func(c *Config) { c.Grace = 0 }, "grace: must be a positive duration, got 0s"},
		{"zero target", func(c *Config) { c.TargetFileBytes = 0; c.RowGroupBytes = 0 }, "row_group_bytes: must be positive, got 0\ntarget_file_bytes: must be positive, got 0"},
		{"row group over target", func(c *Config) { c.RowGroupBytes = c.TargetFileBytes + 1 }, "row_group_bytes: must not exceed target_file_bytes (536870912), got 536870913"},
		{"zero sort buffer", func(c *Config) { c.SortBufferBytes = 0 }, "sort_buffer_bytes: must be positive, got 0"},
		{"no sort keys", func(c *Config) { c.SortKeys, c.SortFallback = nil, nil }, "sort_keys: at least one of sort_keys and sort_fallback is required"},
		{"zstd level", func(c *Config) { c.ZstdLevel = 23 }, "zstd_level: must be 0 (default) or 1-22, got 23"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
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
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Lake.Database = "Bad-Name"
	cfg.Grace = 0
	cfg.ShutdownTimeout = -time.Second
	err := cfg.Validate()
	if err == nil || len(strings.Split(err.Error(), "\n")) != 3 {
		t.Fatalf("want three problems, got %v", err)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		EnvPrefix + "LAKE_URL":           "hdfs://nn:8020/warehouse",
		EnvPrefix + "LAKE_METASTORE_URI": "thrift://hms:9083",
		EnvPrefix + "TABLES":             "page_view, click",
		EnvPrefix + "ONCE":               "true",
		EnvPrefix + "LATENESS":           "90m",
		EnvPrefix + "GRACE":              "2h",
		EnvPrefix + "TARGET_FILE_BYTES":  "268435456",
		EnvPrefix + "SORT_KEYS":          "user_id,session_id,event_time",
		EnvPrefix + "SHUTDOWN_TIMEOUT":   "7s",
		EnvPrefix + "LOG_LEVEL":          "debug",
	}
	cfg := DefaultConfig()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := config.FromLookup(&cfg, EnvPrefix, lookup); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Lake.URL != "hdfs://nn:8020/warehouse" || cfg.Lake.MetastoreURI != "thrift://hms:9083" || !cfg.Once ||
		!slices.Equal(cfg.Tables, []string{"page_view", "click"}) || cfg.Lateness != 90*time.Minute || cfg.Grace != 2*time.Hour ||
		cfg.TargetFileBytes != 256<<20 || !slices.Equal(cfg.SortKeys, []string{"user_id", "session_id", "event_time"}) ||
		cfg.ShutdownTimeout != 7*time.Second || cfg.Telemetry.LogLevel != "debug" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	env[EnvPrefix+"SHUTDOWN_TIMEOUT"] = "soon"
	err := config.FromLookup(&cfg, EnvPrefix, lookup)
	if err == nil || !strings.Contains(err.Error(), EnvPrefix+`SHUTDOWN_TIMEOUT="soon": not a duration`) {
		t.Fatalf("bad duration not reported: %v", err)
	}
}

func TestEveryVariableIsDocumented(t *testing.T) {
	t.Parallel()
	for _, v := range config.Vars(DefaultConfig(), EnvPrefix) {
		if v.Doc == "" {
			t.Errorf("%s has no doc tag", v.Name)
		}
	}
}
