package lakewriter

import (
	"fmt"
	"io"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
)

// Key-value metadata of every file the lakewriter writes: the file's lineage.
const (
	MetaTopic       = "clickstream.topic"
	MetaPartition   = "clickstream.kafka_partition"
	MetaFirstOffset = "clickstream.first_offset"
	MetaLastOffset  = "clickstream.last_offset"
	MetaMessage     = "clickstream.message" // the protobuf message's full name
	MetaWriter      = "clickstream.writer"  // "lakewriter <module version>"
	// MetaSchemaVersion is the schema version whose table schema the file has (decimal; 0 =
	// the built-in example schemas). A file opened under an earlier version whose table schema
	// was the same carries the later one: its columns are that version's.
	MetaSchemaVersion = "clickstream.schema_version"
	// MetaIDField names the event's own id field (clickstream.v1.event id_field), the
	// compactor's deduplication key; absent when the schema declares none (dead_letters too).
	MetaIDField = "clickstream.id_field"
)

// WriterVersion names this build in file metadata.
func WriterVersion() string { return writerVersion }

// writerVersion is read from the build information once; it cannot change while running.
var writerVersion = "lakewriter " + run.ModuleVersion("github.com/clickstream/clickstream/lakewriter")

// countingWriter counts the bytes that reached the file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// parquetFile writes one Parquet file of one table.
type parquetFile struct {
	out          *countingWriter
	pw           *parquet.Writer
	rowGroupSize int64
	rows         int64
}

func newParquetFile(w io.Writer, s *Schema, pageSize int, rowGroupSize int64) *parquetFile {
	out := &countingWriter{w: w}
	pw := parquet.NewWriter(out, s.Parquet,
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.PageBufferSize(pageSize),
		parquet.CreatedBy("clickstream-lakewriter", "", ""),
		parquet.DataPageStatistics(true),
	)
	return &parquetFile{out: out, pw: pw, rowGroupSize: rowGroupSize}
}

// writeRow adds one row; its values are copied.
func (f *parquetFile) writeRow(row parquet.Row) error {
	if _, err := f.pw.WriteRows([]parquet.Row{row}); err != nil {
		return fmt.Errorf("write parquet row: %w", err)
	}
	f.rows++
	// Cut a row group when the buffered one is large enough (its size is estimated before
	// compression, so row groups come out smaller on disk).
	if f.pw.Size()-f.out.n >= f.rowGroupSize {
		if err := f.pw.Flush(); err != nil {
			return fmt.Errorf("flush parquet row group: %w", err)
		}
	}
	return nil
}

// size estimates the file's size: bytes written plus the buffered row group.
func (f *parquetFile) size() int64 { return f.pw.Size() }

// close writes the footer with the file's lineage and the schema s it was written with; the
// underlying file stays open.
func (f *parquetFile) close(df lake.DataFile, s *Schema) error {
	f.pw.SetKeyValueMetadata(MetaTopic, df.Topic)
	f.pw.SetKeyValueMetadata(MetaPartition, strconv.Itoa(int(df.Partition)))
	f.pw.SetKeyValueMetadata(MetaFirstOffset, strconv.FormatInt(df.FirstOffset, 10))
	f.pw.SetKeyValueMetadata(MetaLastOffset, strconv.FormatInt(df.LastOffset, 10))
	f.pw.SetKeyValueMetadata(MetaMessage, string(s.Message.FullName()))
	f.pw.SetKeyValueMetadata(MetaSchemaVersion, strconv.FormatUint(uint64(s.Version), 10))
	if s.IDField != "" {
		f.pw.SetKeyValueMetadata(MetaIDField, s.IDField)
	}
	f.pw.SetKeyValueMetadata(MetaWriter, WriterVersion())
	if err := f.pw.Close(); err != nil {
		return fmt.Errorf("close parquet writer: %w", err)
	}
	return nil
}
