package collector

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clickstream/clickstream/services/config"
)

// raccoonAlias maps one of Raccoon's environment variables onto the setting whose own variable
// is EnvPrefix+ours. The Raccoon variable applies only when that one is not set.
type raccoonAlias struct {
	raccoon string
	ours    string
	apply   func(c *Config, v string) error
}

// raccoonAliases are Raccoon v0.3.0's variables that have a counterpart here. Ports become
// ":port" (every interface), as Raccoon listens. Raccoon variables without a counterpart
// (worker pool sizes, librdkafka tuning, StatsD, CORS) are ignored.
var raccoonAliases = []raccoonAlias{
	{"SERVER_WEBSOCKET_PORT", "HTTP_ADDR", func(c *Config, v string) error { return port(&c.HTTPAddr, v) }},
	{"SERVER_GRPC_PORT", "GRPC_ADDR", func(c *Config, v string) error { return port(&c.GRPCAddr, v) }},
	{"SERVER_WEBSOCKET_MAX_CONN", "MAX_CONNECTIONS", func(c *Config, v string) error { return integer(&c.MaxConnections, v) }},
	{"SERVER_WEBSOCKET_CONN_ID_HEADER", "CONN_ID_HEADER", func(c *Config, v string) error { c.ConnIDHeader = v; return nil }},
	{"SERVER_WEBSOCKET_CONN_GROUP_HEADER", "CONN_GROUP_HEADER", func(c *Config, v string) error { c.ConnGroupHeader = v; return nil }},
	{"SERVER_WEBSOCKET_CONN_GROUP_DEFAULT", "CONN_GROUP_DEFAULT", func(c *Config, v string) error { c.ConnGroupDefault = v; return nil }},
	{"SERVER_WEBSOCKET_READ_BUFFER_SIZE", "WS_READ_BUFFER_SIZE", func(c *Config, v string) error { return integer(&c.WSReadBufferSize, v) }},
	{"SERVER_WEBSOCKET_WRITE_BUFFER_SIZE", "WS_WRITE_BUFFER_SIZE", func(c *Config, v string) error { return integer(&c.WSWriteBufferSize, v) }},
	{"SERVER_WEBSOCKET_PING_INTERVAL_MS", "PING_INTERVAL", func(c *Config, v string) error { return millis(&c.PingInterval, v) }},
	{"SERVER_WEBSOCKET_PONG_WAIT_INTERVAL_MS", "READ_TIMEOUT", func(c *Config, v string) error { return millis(&c.ReadTimeout, v) }},
	{"SERVER_WEBSOCKET_WRITE_WAIT_INTERVAL_MS", "WRITE_TIMEOUT", func(c *Config, v string) error { return millis(&c.WriteTimeout, v) }},
	{"SERVER_WEBSOCKET_CHECK_ORIGIN", "CHECK_ORIGIN", func(c *Config, v string) error { return boolean(&c.CheckOrigin, v) }},
	{"EVENT_DISTRIBUTION_PUBLISHER_PATTERN", "TOPIC_PATTERN", func(c *Config, v string) error { c.TopicPattern = v; return nil }},
	{"EVENT_ACK", "FIRE_AND_FORGET", func(c *Config, v string) error {
		switch v {
		case "0":
			c.FireAndForget = true
		case "1":
			c.FireAndForget = false
		default:
			return fmt.Errorf("must be 0 (ack before Kafka) or 1 (ack after Kafka)")
		}
		return nil
	}},
	{"PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS", "KAFKA_BROKERS", func(c *Config, v string) error { c.Kafka.Brokers = list(v); return nil }},
	{"PUBLISHER_KAFKA_CLIENT_METADATA_BROKER_LIST", "KAFKA_BROKERS", func(c *Config, v string) error { c.Kafka.Brokers = list(v); return nil }},
	{"PUBLISHER_KAFKA_CLIENT_CLIENT_ID", "KAFKA_CLIENT_ID", func(c *Config, v string) error { c.Kafka.ClientID = v; return nil }},
	{"PUBLISHER_KAFKA_CLIENT_COMPRESSION_TYPE", "PRODUCER_COMPRESSION", func(c *Config, v string) error { c.Producer.Compression = v; return nil }},
	{"PUBLISHER_KAFKA_CLIENT_LINGER_MS", "PRODUCER_LINGER", func(c *Config, v string) error { return millis(&c.Producer.Linger, v) }},
	{"PUBLISHER_KAFKA_CLIENT_QUEUE_BUFFERING_MAX_MS", "PRODUCER_LINGER", func(c *Config, v string) error { return millis(&c.Producer.Linger, v) }},
	{"PUBLISHER_KAFKA_CLIENT_MESSAGE_TIMEOUT_MS", "ACK_TIMEOUT", func(c *Config, v string) error { return millis(&c.AckTimeout, v) }},
	{"PUBLISHER_KAFKA_CLIENT_DELIVERY_TIMEOUT_MS", "ACK_TIMEOUT", func(c *Config, v string) error { return millis(&c.AckTimeout, v) }},
	{"METRIC_PROMETHEUS_PORT", "ADMIN_ADDR", func(c *Config, v string) error { return port(&c.Telemetry.AdminAddr, v) }},
	{"LOG_LEVEL", "LOG_LEVEL", func(c *Config, v string) error { c.Telemetry.LogLevel = strings.ToLower(v); return nil }},
}

// RaccoonEnv applies Raccoon's environment variable names (SERVER_WEBSOCKET_PORT,
// EVENT_DISTRIBUTION_PUBLISHER_PATTERN, PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS, …) to cfg, so
// that a Raccoon deployment can switch images. A COLLECTOR_* variable for the same setting wins.
// Use it as run.Spec.FromEnv (after the COLLECTOR_* variables were read).
func RaccoonEnv(cfg *Config, lookup config.Lookup) error {
	var p config.Problems
	for _, a := range raccoonAliases {
		if _, ours := lookup(EnvPrefix + a.ours); ours {
			continue
		}
		v, ok := lookup(a.raccoon)
		if !ok {
			continue
		}
		if err := a.apply(cfg, strings.TrimSpace(v)); err != nil {
			p.Addf(a.raccoon, "%q: %v", v, err)
		}
	}
	return p.Err()
}

func port(dst *string, v string) error {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return fmt.Errorf("not a port number")
	}
	*dst = ":" + strconv.FormatUint(n, 10)
	return nil
}

func integer(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("not an integer")
	}
	*dst = n
	return nil
}

func millis(dst *time.Duration, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("not a whole number of milliseconds")
	}
	*dst = time.Duration(n) * time.Millisecond
	return nil
}

func boolean(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("not a boolean")
	}
	*dst = b
	return nil
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// RaccoonVariable pairs one of Raccoon's environment variables with the collector's own variable
// for the same setting, for documentation.
type RaccoonVariable struct {
	Raccoon string // e.g. SERVER_WEBSOCKET_PORT
	Ours    string // e.g. COLLECTOR_HTTP_ADDR
}

// RaccoonVariables lists every Raccoon variable RaccoonEnv honours, in the order it applies them.
func RaccoonVariables() []RaccoonVariable {
	out := make([]RaccoonVariable, len(raccoonAliases))
	for i, a := range raccoonAliases {
		out[i] = RaccoonVariable{Raccoon: a.raccoon, Ours: EnvPrefix + a.ours}
	}
	return out
}
