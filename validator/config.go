package validator

import (
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// EnvPrefix prefixes every environment variable of the validator.
const EnvPrefix = "VALIDATOR_"

// Config is the whole configuration of the validator. Every field can be set from the environment
// (see README, "Configuration").
type Config struct {
	Telemetry telemetry.Config `envPrefix:""`
	Kafka     kafka.Config     `envPrefix:"KAFKA_"`
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" doc:"deadline of the graceful shutdown after SIGTERM"`

	// RawTopicPattern names the raw topics as the collector does: its first %s is the event type.
	// Every topic it matches is consumed (kgo.ConsumeRegex), including topics created later and
	// the catch-all of unknown types. A pattern without %s is one topic shared by every type.
	RawTopicPattern string `env:"RAW_TOPIC_PATTERN" doc:"raw topic pattern; first %s = event type (the collector's TOPIC_PATTERN)"`
	// DLQTopic receives one clickstream.v1.DeadLetter per refused event.
	DLQTopic string `env:"DLQ_TOPIC" doc:"dead-letter topic"`
	// Group is the consumer group of the raw topics (group.id).
	Group string `env:"GROUP" doc:"consumer group id of the raw topics (group.id)"`
	// TransactionalID prefixes the producer's transactional.id; the full id is
	// <TransactionalID>-<InstanceID>. It must be unique per running validator and should stay
	// the same across restarts of one instance, so that a restarted instance fences its previous
	// incarnation and aborts its open transaction at once instead of after TransactionTimeout.
	TransactionalID string `env:"TRANSACTIONAL_ID" doc:"transactional.id prefix; the id is <prefix>-<INSTANCE_ID>"`
	// InstanceID tells instances apart: the host name by default (a pod name under Kubernetes).
	// Two validators with the same InstanceID fence each other.
	InstanceID string `env:"INSTANCE_ID" docDefault:"(host name)" doc:"unique, stable name of this instance (default: host name); empty: the prefix alone is the transactional.id"`
	// TransactionTimeout is how long the broker lets a transaction stay open before aborting it
	// (transaction.timeout.ms); a crashed instance that does not come back blocks read_committed
	// readers of its output partitions for at most this long.
	TransactionTimeout time.Duration `env:"TRANSACTION_TIMEOUT" doc:"transaction.timeout.ms: the broker aborts a transaction open longer"`
	// SessionTimeout is the consumer group session timeout (session.timeout.ms): how long a
	// crashed member keeps its partitions before the group moves them.
	SessionTimeout time.Duration `env:"SESSION_TIMEOUT" doc:"group session.timeout.ms"`
	// MetadataMaxAge is how often metadata is refreshed (metadata.max.age.ms), hence how soon a
	// new raw topic is consumed.
	MetadataMaxAge time.Duration `env:"METADATA_MAX_AGE" doc:"metadata.max.age.ms: new raw topics are found within this"`
	// MaxPollRecords caps the records of one transaction (max.poll.records).
	MaxPollRecords int `env:"MAX_POLL_RECORDS" doc:"most raw records in one transaction (max.poll.records)"`
	// MaxEventBytes refuses larger events as TOO_LARGE without decoding them.
	MaxEventBytes int `env:"MAX_EVENT_BYTES" doc:"events larger than this are dead-lettered as TOO_LARGE"`
	// Decoder is how events are decoded: auto (default: protobuf-go's generated type when it is
	// linked in, hyperpb otherwise), generated (protobuf-go always, dynamicpb for types without
	// generated code) or hyperpb (always; faster, fewer allocations; opt-in because hyperpb
	// v0.1.3 crashes on some malformed input, which a guard keeps from it: see guard.go).
	Decoder string `env:"DECODER" doc:"event decoder: auto (generated code when linked in, else hyperpb), generated or hyperpb"`

	// SchemasTopic is the schema topic the validator follows when the process does not share
	// one follower between its services: every new version is put in force without a restart.
	SchemasTopic string `env:"SCHEMAS_TOPIC" doc:"schema topic to follow (clickstream schemas push writes it)"`
	// SchemaWait is how long a poll holding an event of a type that has a raw topic of its own
	// but no schema waits for a newer schema version (the push that created the topic may not
	// have reached this validator yet) before the validator stops on the missing schema. 0:
	// stop at once.
	SchemaWait time.Duration `env:"SCHEMA_WAIT" doc:"wait for a newer schema version when a type has its own raw topic but no schema (0: stop at once)"`

	// CreateTopics creates the contract's topics (kafka.ContractTopics: every type's raw and
	// valid topic, the catch-all and the DLQ) at start-up if they are missing.
	CreateTopics bool `env:"CREATE_TOPICS" doc:"create missing contract topics at start-up"`
	// Topics is how CreateTopics creates topics.
	Topics kafka.Topics `envPrefix:"TOPIC_"`
	// StartupTimeout bounds waiting for Kafka and creating topics at start-up.
	StartupTimeout time.Duration `env:"STARTUP_TIMEOUT" doc:"wait for Kafka and topic creation at start-up"`
	// Producer tunes the transactional producer (acks=all and idempotence are implied).
	Producer kafka.Producer `envPrefix:"PRODUCER_"`
}

// DefaultConfig is a configuration that works against a local stack.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Telemetry:       telemetry.DefaultConfig("127.0.0.1:9101"),
		Kafka:           kafka.DefaultConfig("clickstream-validator"),
		ShutdownTimeout: 30 * time.Second,

		RawTopicPattern:    kafka.DefaultRawTopicPattern,
		DLQTopic:           kafka.DefaultDLQTopic,
		Group:              "clickstream-validator",
		TransactionalID:    "clickstream-validator",
		InstanceID:         host,
		TransactionTimeout: 10 * time.Second,
		SessionTimeout:     45 * time.Second,
		MetadataMaxAge:     5 * time.Second,
		MaxPollRecords:     10000,
		MaxEventBytes:      1000000,
		Decoder:            DecoderAuto,
		SchemasTopic:       schemastore.DefaultTopic,
		SchemaWait:         60 * time.Second,

		CreateTopics:   true,
		Topics:         kafka.Topics{Partitions: 3, ReplicationFactor: -1},
		StartupTimeout: 60 * time.Second,
		Producer: kafka.Producer{
			Compression:   "zstd",
			Linger:        5 * time.Millisecond,
			BatchMaxBytes: 1 << 20,
		},
	}
}

// recordSlack is what one record needs in a batch beyond its value: key, headers, framing.
const recordSlack = 8 << 10

// topicName is what Kafka accepts as a topic name.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var p config.Problems
	p.Merge("telemetry", c.Telemetry.Validate())
	p.Merge("kafka", c.Kafka.Validate())
	p.PositiveDuration("shutdown_timeout", c.ShutdownTimeout)

	if strings.Count(c.RawTopicPattern, "%s") > 1 {
		p.Addf("raw_topic_pattern", "must contain %%s at most once, got %q", c.RawTopicPattern)
	} else if t := strings.Replace(c.RawTopicPattern, "%s", "page_view", 1); !topicName.MatchString(t) {
		p.Addf("raw_topic_pattern", "does not make legal topic names: %q", c.RawTopicPattern)
	} else {
		raw := regexp.MustCompile(rawTopicRegex(c.RawTopicPattern))
		for _, out := range []string{c.DLQTopic, kafka.ValidTopic("page_view")} {
			if raw.MatchString(out) {
				p.Addf("raw_topic_pattern", "matches the output topic %s: the validator would consume its own output", out)
			}
		}
	}
	if !topicName.MatchString(c.DLQTopic) {
		p.Addf("dlq_topic", "not a legal topic name: %q", c.DLQTopic)
	}
	p.Required("group", c.Group)
	p.Required("transactional_id", c.TransactionalID)
	if id := c.transactionalID(); len(id) > 255 {
		p.Addf("instance_id", "transactional id %q is longer than 255 bytes", id)
	}
	p.PositiveDuration("transaction_timeout", c.TransactionTimeout)
	p.PositiveDuration("session_timeout", c.SessionTimeout)
	p.PositiveDuration("metadata_max_age", c.MetadataMaxAge)
	p.Positive("max_poll_records", int64(c.MaxPollRecords))
	p.Positive("max_event_bytes", int64(c.MaxEventBytes))
	if c.MaxEventBytes > 0 && c.Producer.BatchMaxBytes > 0 && int64(c.MaxEventBytes)+recordSlack > int64(c.Producer.BatchMaxBytes) {
		p.Addf("max_event_bytes", "must leave %d bytes for key and headers below producer.batch_max_bytes (%d), got %d",
			recordSlack, c.Producer.BatchMaxBytes, c.MaxEventBytes)
	}
	p.OneOf("decoder", c.Decoder, DecoderAuto, DecoderGenerated, DecoderHyperPB)
	if !topicName.MatchString(c.SchemasTopic) {
		p.Addf("schemas_topic", "not a legal topic name: %q", c.SchemasTopic)
	}
	if c.SchemaWait < 0 {
		p.Addf("schema_wait", "must not be negative, got %s", c.SchemaWait)
	}
	if c.CreateTopics {
		p.Positive("topic.partitions", int64(c.Topics.Partitions))
		if c.Topics.ReplicationFactor == 0 || c.Topics.ReplicationFactor < -1 {
			p.Addf("topic.replication_factor", "must be positive or -1 (broker default), got %d", c.Topics.ReplicationFactor)
		}
	}
	p.PositiveDuration("startup_timeout", c.StartupTimeout)
	p.Merge("producer", c.Producer.Validate())
	return p.Err()
}

// transactionalID is the producer's transactional.id.
func (c Config) transactionalID() string {
	if c.InstanceID == "" {
		return c.TransactionalID
	}
	return c.TransactionalID + "-" + c.InstanceID
}

// rawTopicRegex matches every raw topic of pattern and captures the event type; a pattern
// without %s is a single topic shared by every type, captured as "".
func rawTopicRegex(pattern string) string {
	if !strings.Contains(pattern, "%s") {
		return "^" + regexp.QuoteMeta(pattern) + "()$"
	}
	return kafka.RawTopicRegex(pattern)
}
