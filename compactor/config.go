package compactor

import (
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/telemetry"
)

// EnvPrefix prefixes every environment variable of the compactor.
const EnvPrefix = "COMPACTOR_"

// Config is the whole configuration of the compactor. Every field can be set from the environment
// (see README, "Configuration"). The compactor reads no Kafka: the lake is its only input.
type Config struct {
	Telemetry telemetry.Config `envPrefix:""`
	// Lake is the warehouse and its metastore, shared with the lakewriter (COMPACTOR_LAKE_*).
	// With a metastore, a compacted partition is swapped in by pointing the partition at the new
	// directory (alter_partition). Without one (local disk only), the partition directory itself
	// is swapped with the new one by an atomic rename exchange, which only a local file system
	// offers: an HDFS lake needs the metastore.
	Lake lake.Config `envPrefix:"LAKE_"`
	// Tables limits compaction to these tables; empty means every table directory in the
	// database, listed again at every scan so that tables created while running are compacted.
	Tables []string `env:"TABLES" doc:"tables to compact, comma-separated (empty: every table in the database)"`
	// Interval is the time between two scans of the lake when the compactor runs as a service.
	Interval time.Duration `env:"INTERVAL" doc:"time between two scans of the lake (service mode)"`
	// Once makes Run compact what is due once and return (cron, a Kubernetes Job); the -once
	// flag of cmd/compactor sets it.
	Once bool `env:"ONCE" doc:"compact what is due once and exit instead of running as a service"`
	// Lateness is how long after its hour ends a partition is sealed. Partitions are cut by the
	// collector's receive time and the lakewriter closes an hour's files within minutes of its
	// end (size, timer and hour-boundary rotation), so files arriving later are the lag of a
	// stalled pipeline; 2h covers an hour of consumer lag. Files that still come later are not
	// lost: the partition is compacted again with them (see Grace).
	Lateness time.Duration `env:"LATENESS" doc:"how long after its hour ends a partition is sealed and compacted"`
	// Lookback bounds how far back partitions are looked at on each scan (0: all of them). Late
	// files landing in a partition older than this are not compacted.
	Lookback time.Duration `env:"LOOKBACK" doc:"only partitions whose hour ended within this are looked at (0: all)"`
	// Grace is how long replaced files stay after a swap before they are deleted: longer than
	// the longest query, so that a query planned before the swap can still read what it listed
	// (Trino: query.max-execution-time; Spark: the longest job).
	Grace time.Duration `env:"GRACE" doc:"how long replaced files are kept after a swap (longer than the longest query)"`
	// TargetFileBytes is the size compacted files aim for (Iceberg's default; two HDFS blocks of
	// 256 MiB): a partition's rows are spread evenly over as many files as that takes.
	TargetFileBytes int64 `env:"TARGET_FILE_BYTES" doc:"size compacted Parquet files aim for, in bytes"`
	// RowGroupBytes is the compressed size of a row group (parquet.block.size in parquet-mr).
	RowGroupBytes int64 `env:"ROW_GROUP_BYTES" doc:"compressed Parquet row group size, in bytes (parquet.block.size)"`
	// SortBufferBytes is the Arrow memory one sorted run may take; a partition that needs more is
	// sorted in runs spilled to SpillDir and merged. Peak memory is about this plus the row group
	// being written (compressed) plus ~60 MiB for the Parquet writer's encoders and page buffers
	// plus ~40 bytes per distinct row for deduplication.
	SortBufferBytes int64 `env:"SORT_BUFFER_BYTES" doc:"memory of one in-memory sort run, in bytes; larger partitions spill to SPILL_DIR"`
	// SpillDir holds the sorted runs of large partitions, on local disk (empty: the OS temp dir).
	SpillDir string `env:"SPILL_DIR" doc:"local directory for sorted runs of large partitions (empty: the OS temp directory)"`
	// SortKeys are the columns rows are sorted by (names may reach into structs: context.app_id);
	// those a table lacks are skipped.
	SortKeys []string `env:"SORT_KEYS" doc:"columns to sort by, comma-separated; columns a table lacks are skipped"`
	// SortFallback is used for tables that have none of SortKeys.
	SortFallback []string `env:"SORT_FALLBACK" doc:"columns to sort by when a table has none of SORT_KEYS"`
	// ZstdLevel is the zstd level of compacted files (0: the codec's default).
	ZstdLevel int `env:"ZSTD_LEVEL" doc:"zstd compression level of compacted files, 1-22 (0: default)"`
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM; a compaction in progress is
	// abandoned (and redone on the next run).
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" doc:"deadline of the graceful shutdown after SIGTERM"`
}

// DefaultConfig is a configuration that works against a local stack.
func DefaultConfig() Config {
	return Config{
		Telemetry:       telemetry.DefaultConfig("127.0.0.1:9103"),
		Lake:            lake.DefaultConfig(),
		Interval:        10 * time.Minute,
		Lateness:        2 * time.Hour,
		Lookback:        7 * 24 * time.Hour,
		Grace:           time.Hour,
		TargetFileBytes: 512 << 20,
		RowGroupBytes:   128 << 20,
		SortBufferBytes: 64 << 20,
		SortKeys:        []string{"user_id", "event_time"},
		SortFallback:    []string{"_received_at"},
		ShutdownTimeout: 30 * time.Second,
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var p config.Problems
	p.Merge("telemetry", c.Telemetry.Validate())
	p.Merge("lake", c.Lake.Validate())
	if c.Lake.MetastoreURI == "" {
		if scheme, _, _, err := lake.ParseURL(c.Lake.URL); err == nil && scheme == "hdfs" {
			p.Addf("lake.metastore_uri", "is required for an HDFS lake: without a metastore a partition is swapped by an atomic directory exchange, which only a local file system has")
		}
	}
	for _, t := range c.Tables {
		if lake.Hidden(t) || t == "" {
			p.Addf("tables", "not a table name: %q", t)
		}
	}
	p.PositiveDuration("interval", c.Interval)
	p.PositiveDuration("lateness", c.Lateness)
	if c.Lookback < 0 {
		p.Addf("lookback", "must not be negative, got %s", c.Lookback)
	} else if c.Lookback > 0 && c.Lookback <= c.Lateness {
		p.Addf("lookback", "must be longer than lateness (%s) or 0, got %s", c.Lateness, c.Lookback)
	}
	p.PositiveDuration("grace", c.Grace)
	p.Positive("target_file_bytes", c.TargetFileBytes)
	p.Positive("row_group_bytes", c.RowGroupBytes)
	if c.RowGroupBytes > c.TargetFileBytes && c.TargetFileBytes > 0 {
		p.Addf("row_group_bytes", "must not exceed target_file_bytes (%d), got %d", c.TargetFileBytes, c.RowGroupBytes)
	}
	p.Positive("sort_buffer_bytes", c.SortBufferBytes)
	if len(c.SortKeys) == 0 && len(c.SortFallback) == 0 {
		p.Addf("sort_keys", "at least one of sort_keys and sort_fallback is required")
	}
	if c.ZstdLevel < 0 || c.ZstdLevel > 22 {
		p.Addf("zstd_level", "must be 0 (default) or 1-22, got %d", c.ZstdLevel)
	}
	p.PositiveDuration("shutdown_timeout", c.ShutdownTimeout)
	return p.Err()
}
