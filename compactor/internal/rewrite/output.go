package rewrite

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// output writes sorted batches into files of rowsPerFile rows, with row groups of rowGroupRows
// rows (the row group size estimated from the input's bytes per row) or rowGroupBytes of
// compressed pages, whichever comes first.
type output struct {
	ctx           context.Context
	create        func(i int) (io.WriteCloser, error)
	schema        *arrow.Schema
	props         func(first arrow.RecordBatch) *parquet.WriterProperties // decided once, from the first batch
	fileProps     *parquet.WriterProperties
	arrowProps    pqarrow.ArrowWriterProperties
	rowGroupBytes int64
	rowsPerFile   int64
	rowGroupRows  int64
	metadata      map[string]string

	files  []OutputFile
	w      io.WriteCloser
	cw     *countingWriter
	fw     *pqarrow.FileWriter
	rows   int64 // rows in the current file
	rgs    int   // row groups in the current file
	rgRows int64 // rows in the current row group
}

// countingWriter counts the bytes of a file; the Parquet writer closes it when the footer is out.
type countingWriter struct {
	w io.WriteCloser
	n int64
}

func (c *countingWriter) Close() error { return c.w.Close() }

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (o *output) open(first arrow.RecordBatch) error {
	i := len(o.files)
	if o.fileProps == nil {
		o.fileProps = o.props(first)
	}
	w, err := o.create(i)
	if err != nil {
		return fmt.Errorf("create output %d: %w", i, err)
	}
	o.w, o.cw = w, &countingWriter{w: w}
	fw, err := pqarrow.NewFileWriter(o.schema, o.cw, o.fileProps, o.arrowProps)
	if err != nil {
		w.Close()
		o.w = nil
		return fmt.Errorf("create output %d: %w", i, err)
	}
	o.fw, o.rows, o.rgs = fw, 0, 0
	return o.newRowGroup()
}

func (o *output) newRowGroup() error {
	if err := o.fw.NewBufferedRowGroupChecked(); err != nil {
		return err
	}
	o.rgs++
	o.rgRows = 0
	return nil
}

// write appends rec, starting new row groups and files as they fill.
func (o *output) write(rec arrow.RecordBatch) error {
	for off := int64(0); off < rec.NumRows(); {
		if o.fw == nil {
			if err := o.open(rec); err != nil {
				return err
			}
		}
		n := min(rec.NumRows()-off, o.rowsPerFile-o.rows, o.rowGroupRows-o.rgRows)
		part := rec
		if off != 0 || n != rec.NumRows() {
			part = rec.NewSlice(off, off+n)
		}
		err := o.fw.WriteBuffered(part)
		if part != rec {
			part.Release()
		}
		if err != nil {
			return fmt.Errorf("write output %d: %w", len(o.files), err)
		}
		off += n
		o.rows += n
		o.rgRows += n
		if o.rows == o.rowsPerFile {
			if err := o.closeFile(); err != nil {
				return err
			}
			continue
		}
		if o.rgRows == o.rowGroupRows || o.fw.RowGroupTotalCompressedBytes() >= o.rowGroupBytes {
			if err := o.newRowGroup(); err != nil {
				return fmt.Errorf("write output %d: %w", len(o.files), err)
			}
		}
	}
	return nil
}

func (o *output) closeFile() error {
	keys := make([]string, 0, len(o.metadata))
	for k := range o.metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := o.fw.AppendKeyValueMetadata(k, o.metadata[k]); err != nil {
			return err
		}
	}
	i := len(o.files)
	err := o.fw.Close() // closes o.w too, after the footer
	o.fw, o.w = nil, nil
	if err != nil {
		return fmt.Errorf("close output %d: %w", i, err)
	}
	o.files = append(o.files, OutputFile{Rows: o.rows, Bytes: o.cw.n, RowGroups: o.rgs})
	return nil
}

// finish closes the last file.
func (o *output) finish() error {
	if o.fw == nil {
		return nil
	}
	return o.closeFile()
}

// abort closes an unfinished file after an error, without a footer; the caller removes it.
func (o *output) abort() {
	o.fw = nil
	if o.w != nil {
		o.w.Close()
		o.w = nil
	}
}
