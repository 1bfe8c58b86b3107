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
		EnvPrefix + "KAFKA_BROKERS":    "a:1, b:2",
		EnvPrefix + "SHUTDOWN_TIMEOUT": "7s",
		EnvPrefix + "LOG_LEVEL":        "debug",
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
	env[EnvPrefix+"SHUTDOWN_TIMEOUT"] = "soon"
	err := config.FromLookup(&cfg, EnvPrefix, lookup)
	if err == nil || !strings.Contains(err.Error(), EnvPrefix+`SHUTDOWN_TIMEOUT="soon": not a duration`) {
		t.Fatalf("bad duration not reported: %v", err)
	}
}
