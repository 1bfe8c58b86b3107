package lakewriter

import (
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/telemetry"
)

// EnvPrefix prefixes every environment variable of the lakewriter.
const EnvPrefix = "LAKEWRITER_"

// Config is the whole configuration of the lakewriter. Every field can be set from the environment
// (see README, "Configuration").
type Config struct {
	Telemetry telemetry.Config `envPrefix:""`
	Kafka     kafka.Config     `envPrefix:"KAFKA_"`
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" doc:"deadline of the graceful shutdown after SIGTERM"`
}

// DefaultConfig is a configuration that works against a local stack.
func DefaultConfig() Config {
	return Config{
		Telemetry:       telemetry.DefaultConfig("127.0.0.1:9102"),
		Kafka:           kafka.DefaultConfig("clickstream-lakewriter"),
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var p config.Problems
	p.Merge("telemetry", c.Telemetry.Validate())
	p.Merge("kafka", c.Kafka.Validate())
	p.PositiveDuration("shutdown_timeout", c.ShutdownTimeout)
	return p.Err()
}
