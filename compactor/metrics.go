package compactor

import "github.com/prometheus/client_golang/prometheus"

// metrics of the compactor. Rows add up per table: rows_read = rows_written + duplicates_dropped.
type metrics struct {
	compacted  *prometheus.CounterVec // table
	rowsRead   *prometheus.CounterVec
	rowsOut    *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	bytesRead  *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	deleted    *prometheus.CounterVec
	errors     *prometheus.CounterVec // table, step
	duration   *prometheus.HistogramVec
	files      *prometheus.GaugeVec // table, stage (before, after)
	pending    *prometheus.GaugeVec // table
	// Partitions refused because their files disagree on a column's type: they stay as they
	// are (and count in pending) until someone rewrites or moves the odd files.
	schemaConflicts *prometheus.GaugeVec // table
	lastScan        prometheus.Gauge
	// What readers see at the last scan, per table: files per partition is
	// dataFiles / partitionsScanned on average, filesMax at worst.
	partitionsScanned *prometheus.GaugeVec // table
	dataFiles         *prometheus.GaugeVec // table
	filesMax          *prometheus.GaugeVec // table
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "clickstream_compactor_"
	m := &metrics{
		compacted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "partitions_compacted_total",
			Help: "Partitions swapped to a new compacted generation."}, []string{"table"}),
		rowsRead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "rows_read_total",
			Help: "Rows read from the files of compacted partitions."}, []string{"table"}),
		rowsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "rows_written_total",
			Help: "Rows written to compacted files; rows_read = rows_written + duplicates_dropped."}, []string{"table"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "duplicates_dropped_total",
			Help: "Duplicate rows dropped (same event id, or same request guid and event index)."}, []string{"table"}),
		bytesRead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "bytes_read_total",
			Help: "Bytes of Parquet files read by compactions."}, []string{"table"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "bytes_written_total",
			Help: "Bytes of compacted Parquet files written."}, []string{"table"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "files_deleted_total",
			Help: "Replaced files and directories deleted after the grace period."}, []string{"table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "errors_total",
			Help: "Failed steps; the partition is tried again on the next scan."}, []string{"table", "step"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "partition_duration_seconds",
			Help:    "Time to compact one partition, from planning to the swap.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}, []string{"table"}),
		files: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "partition_files",
			Help: "Data files of the last partition compacted, before and after."}, []string{"table", "stage"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "partitions_pending",
			Help: "Partitions due for compaction at the end of the last scan (failed ones)."}, []string{"table"}),
		schemaConflicts: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "partitions_schema_conflict",
			Help: "Partitions left uncompacted at the last scan because their files disagree on a column's type."}, []string{"table"}),
		lastScan: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "last_scan_timestamp_seconds",
			Help: "When the last scan of the lake finished."}),
		partitionsScanned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "partitions_scanned",
			Help: "Partitions of the table (within the lookback) whose files the last scan counted."}, []string{"table"}),
		dataFiles: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "data_files",
			Help: "Data files readers see in those partitions at the last scan (in the directory each partition's location names)."}, []string{"table"}),
		filesMax: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "partition_data_files_max",
			Help: "Most data files readers see in one partition of the table at the last scan."}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.compacted, m.rowsRead, m.rowsOut, m.duplicates, m.bytesRead, m.bytesOut,
			m.deleted, m.errors, m.duration, m.files, m.pending, m.schemaConflicts, m.lastScan, m.partitionsScanned, m.dataFiles, m.filesMax)
	}
	return m
}
