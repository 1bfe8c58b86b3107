package lakewriter

import (
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "clickstream_lakewriter"

// metrics of the lakewriter. Labels come from bounded sets: table (event types of the registry
// plus dead_letters), topic (the consumed ones) and fixed reasons and change kinds. Stages add up: consumed = written + dropped +
// skipped; written = committed + aborted (aborted rows are consumed again).
type metrics struct {
	consumed      *prometheus.CounterVec // table
	written       *prometheus.CounterVec // table
	committed     *prometheus.CounterVec // table
	aborted       *prometheus.CounterVec // table
	dropped       *prometheus.CounterVec // reason
	skipped       prometheus.Counter
	files         *prometheus.CounterVec // table
	bytes         *prometheus.CounterVec // table
	commits       *prometheus.CounterVec // reason
	commitErrors  prometheus.Counter
	latency       prometheus.Histogram
	commitTime    prometheus.Histogram
	openFiles     prometheus.Gauge
	pending       prometheus.Gauge
	registered    prometheus.Counter
	registerFails prometheus.Counter
	recoveries    prometheus.Counter
	replayed      prometheus.Counter
	orphans       prometheus.Counter
	lag           *prometheus.GaugeVec   // topic
	schemaChanges *prometheus.CounterVec // change
	schemaVersion prometheus.Gauge
	schemaWaits   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	m := &metrics{
		consumed:  c("records_consumed_total", "Records read from Kafka, by table.", "table"),
		written:   c("rows_written_total", "Rows written to open (uncommitted) files, by table.", "table"),
		committed: c("rows_committed_total", "Rows in committed (visible) files, by table.", "table"),
		aborted:   c("rows_aborted_total", "Rows of open files discarded (partition lost, write error); they are consumed again.", "table"),
		dropped:   c("records_dropped_total", "Records that cannot become rows (undecodable on a valid topic); should stay 0.", "reason"),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "records_skipped_total",
			Help: "Records fetched again below the committed offset, not written twice."}),
		files:   c("files_committed_total", "Parquet files committed (renamed into their partition), by table.", "table"),
		bytes:   c("bytes_committed_total", "Bytes of committed Parquet files, by table.", "table"),
		commits: c("commits_total", "Commits of a topic-partition's open files, by trigger: size, interval, hour, schema (its table changed), revoke, shutdown.", "reason"),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "commit_errors_total",
			Help: "Commits that failed; their records are consumed again."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "visible_latency_seconds",
			Help:    "From a record's timestamp (the collector's receive time) to the rename that made it visible.",
			Buckets: []float64{1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600}}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "commit_seconds",
			Help:    "Duration of a commit: closing the files, writing the marker, the renames.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}),
		openFiles: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "open_files",
			Help: "Parquet files being written."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "partitions_pending_registration",
			Help: "Table partitions with committed files that the metastore does not list yet (tables not yet created count too)."}),
		registered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "partitions_registered_total",
			Help: "Table partitions registered in the metastore."}),
		registerFails: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "registration_failures_total",
			Help: "Failed metastore registration rounds; they are retried."}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "recoveries_total",
			Help: "Topic-partitions recovered from the lake on assignment."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "renames_replayed_total",
			Help: "Renames of a half-finished commit completed by recovery."}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "orphans_removed_total",
			Help: "Uncommitted staging files removed by recovery."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "lag_records",
			Help: "Records of the topic not yet in a committed (visible) file: the high watermark of the last fetch minus the first uncommitted offset, summed over the partitions this instance owns. Transaction markers count: a caught-up partition written by the validator reads about 1."}, []string{"topic"}),
		schemaChanges: c("schema_changes_total", "Table changes made by new schema versions, by kind: table_added, columns_added, columns_dropped, columns_retyped, other (columns reordered, id field or message changed).", "change"),
		// Not schema_version: the schema follower exports that one under the same namespace.
		schemaVersion: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "tables_schema_version",
			Help: "Schema version the table schemas being written are at; follows the schema topic between two batches."}),
		schemaWaits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "schema_waits_total",
			Help: "Batches held back until the schema version their records were validated under was read from the schema topic."}),
	}
	if reg != nil {
		reg.MustRegister(m.schemaChanges, m.schemaVersion, m.schemaWaits)
		reg.MustRegister(m.consumed, m.written, m.committed, m.aborted, m.dropped, m.skipped, m.files, m.bytes,
			m.commits, m.commitErrors, m.latency, m.commitTime, m.openFiles, m.pending, m.registered,
			m.registerFails, m.recoveries, m.replayed, m.orphans, m.lag)
	}
	return m
}
