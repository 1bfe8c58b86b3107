package lakewriter

import (
	"regexp"
	"strings"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// EnvPrefix prefixes every environment variable of the lakewriter.
const EnvPrefix = "LAKEWRITER_"

// Config is the whole configuration of the lakewriter. Every field can be set from the environment
// (see README, "Configuration").
type Config struct {
	Telemetry telemetry.Config `envPrefix:""`
	Kafka     kafka.Config     `envPrefix:"KAFKA_"`
	// Lake is where the files go and the metastore that registers them (LAKEWRITER_LAKE_URL,
	// LAKEWRITER_LAKE_METASTORE_URI, ...).
	Lake lake.Config `envPrefix:"LAKE_"`

	// GroupID is the Kafka consumer group (group.id). Its committed offsets are only a hint for
	// lag monitoring: the lakewriter resumes from what the lake holds.
	GroupID string `env:"GROUP_ID" doc:"Kafka consumer group (group.id)"`
	// Topics is the regular expression of the valid topics to land; its first capture group is
	// the event type, which names the table.
	Topics string `env:"TOPICS" doc:"regular expression of the valid topics; capture group 1 is the event type (the table)"`
	// DLQTopic is the dead-letter topic, landed in the dead_letters table.
	DLQTopic string `env:"DLQ_TOPIC" doc:"dead-letter topic, landed in the dead_letters table"`
	// SchemasTopic is the schema topic the lakewriter follows (unless the process shares a
	// follower, run.Deps.Schemas): a version that adds a type gets its table, one that adds
	// fields gets columns, without a restart.
	SchemasTopic string `env:"SCHEMAS_TOPIC" doc:"schema topic to follow (clickstream schemas push writes it)"`

	// RotateInterval commits a topic-partition's open files this long after their first record
	// arrived, with or without traffic: the bound on freshness (record → visible).
	RotateInterval time.Duration `env:"ROTATE_INTERVAL" doc:"commit open files this long after their first record, even without traffic"`
	// FileSize commits a topic-partition's files when one of them reaches this estimated size
	// (bytes written plus the buffered row group before compression).
	FileSize int64 `env:"FILE_SIZE" doc:"commit when a file's estimated size reaches this many bytes"`
	// RowGroupSize cuts a Parquet row group when its buffered, uncompressed size reaches this
	// (parquet.block.size in Hadoop's writer), or at FileSize if that is smaller. It also bounds
	// the memory of each open file.
	RowGroupSize int64 `env:"ROW_GROUP_SIZE" doc:"Parquet row group size in bytes before compression (parquet.block.size)"`
	// PageSize is the Parquet page buffer size (parquet.page.size).
	PageSize int `env:"PAGE_SIZE" doc:"Parquet page size in bytes (parquet.page.size)"`
	// MaxPollRecords bounds the records handled per poll (and so the time rebalances wait).
	MaxPollRecords int `env:"MAX_POLL_RECORDS" doc:"records handled per poll at most"`
	// RegisterRetryMax caps the backoff between metastore registration attempts. Registration
	// is retried until it succeeds; writing goes on meanwhile.
	RegisterRetryMax time.Duration `env:"REGISTER_RETRY_MAX" doc:"longest wait between metastore registration retries"`

	// ShutdownTimeout bounds the graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" doc:"deadline of the graceful shutdown after SIGTERM"`
}

// DefaultConfig is a configuration that works against a local stack.
func DefaultConfig() Config {
	return Config{
		Telemetry:        telemetry.DefaultConfig("127.0.0.1:9102"),
		Kafka:            kafka.DefaultConfig("clickstream-lakewriter"),
		Lake:             lake.DefaultConfig(),
		GroupID:          "clickstream-lakewriter",
		Topics:           kafka.ValidTopicRegex,
		DLQTopic:         kafka.DefaultDLQTopic,
		SchemasTopic:     schemastore.DefaultTopic,
		RotateInterval:   60 * time.Second,
		FileSize:         128 << 20,
		RowGroupSize:     64 << 20,
		PageSize:         1 << 20,
		MaxPollRecords:   10000,
		RegisterRetryMax: 30 * time.Second,
		ShutdownTimeout:  30 * time.Second,
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var p config.Problems
	p.Merge("telemetry", c.Telemetry.Validate())
	p.Merge("kafka", c.Kafka.Validate())
	p.Merge("lake", c.Lake.Validate())
	p.Required("group_id", c.GroupID)
	if re, err := regexp.Compile(c.Topics); err != nil {
		p.Addf("topics", "not a regular expression: %v", err)
	} else if re.NumSubexp() < 1 {
		p.Addf("topics", "needs a capture group for the event type, got %q", c.Topics)
	}
	if strings.TrimSpace(c.DLQTopic) == "" {
		p.Addf("dlq_topic", "is required")
	}
	p.Required("schemas_topic", c.SchemasTopic)
	p.PositiveDuration("rotate_interval", c.RotateInterval)
	p.Positive("file_size", c.FileSize)
	p.Positive("row_group_size", c.RowGroupSize)
	p.Positive("page_size", int64(c.PageSize))
	p.Positive("max_poll_records", int64(c.MaxPollRecords))
	p.PositiveDuration("register_retry_max", c.RegisterRetryMax)
	p.PositiveDuration("shutdown_timeout", c.ShutdownTimeout)
	return p.Err()
}
