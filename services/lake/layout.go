package lake

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// DefaultDatabase is the Hive database of the lake (DESIGN.md, "Lake contract").
const DefaultDatabase = "clickstream"

// DeadLettersTable is the table the DLQ lands in.
const DeadLettersTable = "dead_letters"

// Partition columns, in order: both strings, UTC, from the Kafka record timestamp (the
// collector's receive time).
const (
	PartitionDate = "dt"   // YYYY-MM-DD
	PartitionHour = "hour" // HH
)

// Layout places databases, tables, partitions and files under a warehouse directory:
//
//	<Root>/<Database>.db/<table>/dt=2026-11-22/hour=13/<topic>+<partition>+<first>+<last>.parquet
//
// Names starting with "_" or "." are hidden from Hive, Trino and Spark; the lake's own
// bookkeeping lives under such names in the database directory, outside every table.
type Layout struct {
	Root     string // the warehouse directory, absolute, in the lake's FS
	Database string // e.g. "clickstream"
}

// DatabaseDir is <Root>/<Database>.db, Hive's naming.
func (l Layout) DatabaseDir() string { return path.Join(l.Root, l.Database+".db") }

// TableDir is the table's location.
func (l Layout) TableDir(table string) string { return path.Join(l.DatabaseDir(), table) }

// PartitionDir is where the lakewriter commits a partition's files. (The compactor may point the
// metastore partition at another directory; that one is in the metastore, not derived here.)
func (l Layout) PartitionDir(table string, p Partition) string {
	return path.Join(l.TableDir(table), p.Path())
}

// StagingDir holds the files a writer of one topic-partition is still writing. It is hidden,
// outside every table, and in the same file system, so that committing is one rename.
func (l Layout) StagingDir(topic string, partition int32) string {
	return path.Join(l.DatabaseDir(), "_staging", topicPartition(topic, partition))
}

// CommitLogDir holds the lakewriter's commit markers of one topic-partition (see the lakewriter
// package for the protocol).
func (l Layout) CommitLogDir(topic string, partition int32) string {
	return path.Join(l.DatabaseDir(), "_commits", topicPartition(topic, partition))
}

func topicPartition(topic string, partition int32) string {
	return fmt.Sprintf("%s+%05d", topic, partition)
}

// Hidden reports whether Hive, Trino and Spark skip a file or directory name.
func Hidden(name string) bool { return strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") }

// Partition is one hour of one table: dt=YYYY-MM-DD/hour=HH, UTC.
type Partition struct {
	Date string // "2026-11-22"
	Hour string // "13"
}

// PartitionOf is the partition of a record with timestamp t.
func PartitionOf(t time.Time) Partition {
	u := t.UTC()
	return Partition{Date: u.Format("2006-01-02"), Hour: u.Format("15")}
}

// Path is "dt=2026-11-22/hour=13".
func (p Partition) Path() string {
	return PartitionDate + "=" + p.Date + "/" + PartitionHour + "=" + p.Hour
}

// Values are the metastore partition values, in partition-key order.
func (p Partition) Values() []string { return []string{p.Date, p.Hour} }

// String is Path.
func (p Partition) String() string { return p.Path() }

// Start is the first instant of the partition's hour.
func (p Partition) Start() time.Time {
	t, err := time.Parse("2006-01-02 15", p.Date+" "+p.Hour)
	if err != nil {
		return time.Time{}
	}
	return t
}

// End is the first instant after the partition's hour.
func (p Partition) End() time.Time { return p.Start().Add(time.Hour) }

// ParsePartition parses "dt=2026-11-22/hour=13" or the values ["2026-11-22", "13"].
func ParsePartition(s string) (Partition, error) {
	dt, hour, ok := strings.Cut(s, "/")
	d, okd := strings.CutPrefix(dt, PartitionDate+"=")
	h, okh := strings.CutPrefix(hour, PartitionHour+"=")
	if !ok || !okd || !okh {
		return Partition{}, fmt.Errorf("partition %q: want dt=YYYY-MM-DD/hour=HH", s)
	}
	return PartitionFromValues([]string{d, h})
}

// PartitionFromValues checks metastore partition values.
func PartitionFromValues(v []string) (Partition, error) {
	if len(v) != 2 {
		return Partition{}, fmt.Errorf("partition values %q: want [dt hour]", v)
	}
	p := Partition{Date: v[0], Hour: v[1]}
	if _, err := time.Parse("2006-01-02 15", p.Date+" "+p.Hour); err != nil || len(p.Hour) != 2 {
		return Partition{}, fmt.Errorf("partition values %q: want [YYYY-MM-DD HH]", v)
	}
	return p, nil
}

// DataFileExt ends every data file name.
const DataFileExt = ".parquet"

// DataFile names a committed data file by the records it holds: the Kafka topic and partition
// they came from and the first and last offset among them (kafka-connect-hdfs's convention,
// zero-padded to 20 digits so that names sort by offset). The same records always get the same
// name, so a replay cannot add a second copy under another name.
type DataFile struct {
	Topic       string
	Partition   int32
	FirstOffset int64
	LastOffset  int64
}

// Name is "<topic>+<partition %05d>+<first %020d>+<last %020d>.parquet".
func (f DataFile) Name() string {
	return fmt.Sprintf("%s+%05d+%020d+%020d%s", f.Topic, f.Partition, f.FirstOffset, f.LastOffset, DataFileExt)
}

// ParseDataFile parses a committed data file name; ok is false for any other name (hidden
// files, files written by other tools, compacted files).
func ParseDataFile(name string) (f DataFile, ok bool) {
	base, found := strings.CutSuffix(path.Base(name), DataFileExt)
	if !found || Hidden(base) {
		return DataFile{}, false
	}
	parts := strings.Split(base, "+")
	if len(parts) != 4 || parts[0] == "" {
		return DataFile{}, false
	}
	p, err1 := strconv.ParseInt(parts[1], 10, 32)
	first, err2 := strconv.ParseInt(parts[2], 10, 64)
	last, err3 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || p < 0 || first < 0 || last < first {
		return DataFile{}, false
	}
	return DataFile{Topic: parts[0], Partition: int32(p), FirstOffset: first, LastOffset: last}, true
}
