// Package rewrite is the compactor's data path: it reads a partition's Parquet files with Apache
// Arrow, drops duplicate rows, sorts the rest and writes them as large Parquet files with the
// same schema (the union of the files' schemas when they were written under several versions;
// see unify). It knows nothing of file systems or metastores: inputs are opened and outputs
// created through functions the caller gives it.
//
// Memory stays bounded by Options.SortBufferBytes plus one buffered row group: input is read
// batch by batch, each run of SortBufferBytes is sorted in memory, and when a partition needs
// more than one run the sorted runs are spilled to local disk (Arrow IPC, LZ4) and merged. Only
// the deduplication key set (16 bytes and map overhead per distinct row) grows with the
// partition.
package rewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/arrow/util"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	pqschema "github.com/apache/arrow-go/v18/parquet/schema"
)

// File is an input file opened for random access.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Input is one Parquet file of the partition. Inputs are read in the order given; where rows
// are duplicates, the first one read is kept.
type Input struct {
	Name string
	Open func() (File, error)
}

// Options shape the output.
type Options struct {
	// SortKeys are the columns to sort by, in order; names may reach into structs
	// ("context.device.model"). Those a table does not have are skipped.
	SortKeys []string
	// SortFallback is used when the table has none of SortKeys.
	SortFallback []string
	// IDColumn is the event's own unique id column (a string), "" when the schema has none. It is
	// used when the files do not all declare the same one in their metadata (MetaIDField).
	IDColumn string
	// DedupFallback identify a row that has no id: the request guid and the event's index in it.
	DedupFallback []string
	// TargetFileBytes is the size each output file aims for (compressed, estimated from the
	// input's bytes per row). The rows are spread evenly over as many files as that takes.
	TargetFileBytes int64
	// RowGroupBytes closes a row group once its compressed size reaches it.
	RowGroupBytes int64
	// SortBufferBytes is the Arrow memory one sorted run may take; larger partitions spill
	// sorted runs to SpillDir and merge them.
	SortBufferBytes int64
	// BatchRows is the number of rows per Arrow batch read from the input (0: 4096). Batches
	// written are sized in bytes instead (see chunkBytes).
	BatchRows int
	// SpillDir holds the sorted runs of partitions larger than SortBufferBytes ("" = os.TempDir).
	SpillDir string
	// ZstdLevel is the zstd compression level of the output (0 = the codec's default).
	ZstdLevel int
	// CreatedBy is written as the files' created_by.
	CreatedBy string
	// Metadata is added to every output file's key-value metadata, after the entries that all
	// input files share (their lineage, such as the protobuf message's name).
	Metadata map[string]string
	// Allocator allocates Arrow memory (nil = Go's heap).
	Allocator memory.Allocator
}

// OutputFile describes one written file.
type OutputFile struct {
	Rows      int64
	Bytes     int64
	RowGroups int
}

// Result says what a rewrite did.
type Result struct {
	FilesIn    int
	BytesIn    int64
	RowsIn     int64
	RowsOut    int64
	Duplicates int64
	Files      []OutputFile
	SortKeys   []string // the columns actually sorted by
	DedupKeys  []string // the columns rows were identified by
	Runs       int      // sorted runs; more than one means the partition was spilled and merged
	// IDFromFiles says the id column (or that there is none) came from the files' metadata
	// rather than from Options.IDColumn.
	IDFromFiles bool
}

// BytesOut is the size of all output files.
func (r Result) BytesOut() int64 {
	var n int64
	for _, f := range r.Files {
		n += f.Bytes
	}
	return n
}

// Keys of the file metadata the lakewriter writes into every file (lake contract).
const (
	// MetaIDField names the event's own id column, in files whose schema declares one.
	MetaIDField = "clickstream.id_field"
	// MetaSchemaVersion is the number of the schema version the file was written under.
	MetaSchemaVersion = "clickstream.schema_version"
)

// Rewrite reads inputs, drops duplicates, sorts and writes the rows to files made by create,
// numbered from 0. On error, files already created are the caller's to remove.
func Rewrite(ctx context.Context, inputs []Input, create func(i int) (io.WriteCloser, error), opt Options) (res Result, err error) {
	if opt.Allocator == nil {
		opt.Allocator = memory.DefaultAllocator
	}
	if opt.BatchRows <= 0 {
		opt.BatchRows = 4096
	}
	if opt.TargetFileBytes <= 0 || opt.RowGroupBytes <= 0 || opt.SortBufferBytes <= 0 {
		return res, errors.New("rewrite: target file, row group and sort buffer sizes must be positive")
	}
	files, err := openAll(inputs)
	defer func() {
		for _, f := range files {
			if f.f != nil {
				f.f.Close()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	res.FilesIn = len(files)
	var schemas []*arrow.Schema
	for _, f := range files {
		res.BytesIn += f.f.Size()
		schemas = append(schemas, f.arrow)
	}
	if len(files) == 0 {
		return res, nil
	}
	base := newest(files)
	target, err := unify(schemas, base)
	if err != nil {
		return res, err
	}
	root := files[base].pq.MetaData().Schema.Root()
	props := writerProps(opt, root)
	arrowProps := pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(opt.Allocator))
	outSchema, err := pqarrow.ToParquet(target, props, arrowProps)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	for _, f := range files {
		if err := checkParquetSchema(f.name, f.pq.MetaData().Schema, outSchema); err != nil {
			return res, err
		}
	}
	if id, ok := declaredID(files); ok {
		opt.IDColumn, res.IDFromFiles = id, true
	}
	keys, err := resolveKeys(target, opt)
	if err != nil {
		return res, err
	}
	res.SortKeys, res.DedupKeys = keys.names()
	sorting := sortingColumns(keys.sort, outSchema)

	s := &sorter{ctx: ctx, mem: opt.Allocator, schema: target, keys: keys, opt: opt, seen: map[[2]uint64]struct{}{}, hash: newHasher()}
	defer s.close()
	for _, f := range files {
		if err := s.readFile(f); err != nil {
			return res, err
		}
	}
	res.RowsIn, res.RowsOut = s.rowsIn, s.rowsOut
	res.Duplicates = s.rowsIn - s.rowsOut
	if s.rowsOut == 0 {
		return res, nil
	}

	// The output says what it holds: the id it was deduplicated by (so the next compaction of
	// the partition agrees with the late files) and the version whose schema it has.
	metadata := sharedMetadata(files)
	delete(metadata, MetaIDField)
	if keys.dedup.id != nil {
		metadata[MetaIDField] = keys.dedup.id.name
	}
	if v, ok := files[base].meta[MetaSchemaVersion]; ok {
		metadata[MetaSchemaVersion] = v
	}
	for k, v := range opt.Metadata {
		metadata[k] = v
	}
	w := &output{
		ctx: ctx, create: create, schema: target, arrowProps: arrowProps,
		props: func(first arrow.RecordBatch) *parquet.WriterProperties {
			extra := append(dictionaryColumns(first), parquet.WithSortingColumns(sorting))
			return writerProps(opt, root, extra...)
		},
		rowGroupBytes: opt.RowGroupBytes, metadata: metadata,
		rowsPerFile:  rowsPerFile(res.BytesIn, s.rowsIn, s.rowsOut, opt.TargetFileBytes),
		rowGroupRows: max(1, int64(float64(opt.RowGroupBytes)*float64(s.rowsIn)/float64(max(res.BytesIn, 1)))),
	}
	defer w.abort()
	res.Runs = len(s.spilled)
	if len(s.batches) > 0 {
		res.Runs++
	}
	err = s.finish(w.write)
	if err != nil {
		return res, err
	}
	if err := w.finish(); err != nil {
		return res, err
	}
	res.Files = w.files
	return res, nil
}

// sharedMetadata are the key-value metadata entries every input file has with the same value
// (entries naming one file's offsets differ and are dropped). The Arrow schema is not carried
// over: the output's schema is derived again.
func sharedMetadata(files []inputFile) map[string]string {
	out := map[string]string{}
	for i, f := range files {
		have := f.meta
		if i == 0 {
			for k, v := range have {
				if k != "ARROW:schema" {
					out[k] = v
				}
			}
			continue
		}
		for k, v := range out {
			if hv, ok := have[k]; !ok || hv != v {
				delete(out, k)
			}
		}
	}
	return out
}

// rowsPerFile spreads rowsOut evenly over as many files as the target size needs, estimating the
// output's bytes per row from the input's.
func rowsPerFile(bytesIn, rowsIn, rowsOut, target int64) int64 {
	est := float64(bytesIn) * float64(rowsOut) / float64(max(rowsIn, 1))
	n := int64(math.Ceil(est / float64(target)))
	if n < 1 {
		n = 1
	}
	return (rowsOut + n - 1) / n
}

type inputFile struct {
	name  string
	f     File
	pq    *file.Reader
	arrow *arrow.Schema
	meta  map[string]string // key-value metadata
}

// newest is the input whose schema the output takes (see unify): the one written under the
// highest schema version (MetaSchemaVersion; files without one were written before versions
// were recorded, so are older), then the one with the most columns counting struct fields (for
// files without versions: schemas only gain columns), then the last one.
func newest(files []inputFile) int {
	version := func(f inputFile) (uint64, bool) {
		v, err := strconv.ParseUint(f.meta[MetaSchemaVersion], 10, 64)
		return v, err == nil
	}
	best := 0
	for i := 1; i < len(files); i++ {
		bv, bok := version(files[best])
		v, ok := version(files[i])
		switch {
		case ok != bok:
			if ok {
				best = i
			}
			continue
		case v != bv:
			if v > bv {
				best = i
			}
			continue
		}
		if countFields(files[i].arrow.Fields()) >= countFields(files[best].arrow.Fields()) {
			best = i
		}
	}
	return best
}

// countFields counts fields at every depth.
func countFields(fields []arrow.Field) int {
	n := len(fields)
	for _, f := range fields {
		n += countFields(childFields(f.Type))
	}
	return n
}

// declaredID is the id column the files' metadata declares, "" for none, when every file
// declares the same. A file declares an id with MetaIDField, and that its schema has none by a
// schema version without MetaIDField (the lakewriter writes the id whenever the schema has
// one). Files written before the lakewriter recorded either say nothing; then, as when files
// disagree, ok is false and the caller's registry decides.
func declaredID(files []inputFile) (id string, ok bool) {
	for i, f := range files {
		fid, has := f.meta[MetaIDField]
		if !has {
			if _, versioned := f.meta[MetaSchemaVersion]; !versioned {
				return "", false
			}
		}
		if i > 0 && fid != id {
			return "", false
		}
		id = fid
	}
	return id, len(files) > 0
}

func openAll(inputs []Input) ([]inputFile, error) {
	var files []inputFile
	for _, in := range inputs {
		f, err := in.Open()
		if err != nil {
			return files, fmt.Errorf("open %s: %w", in.Name, err)
		}
		props := parquet.NewReaderProperties(nil)
		props.BufferedStreamEnabled = true
		props.BufferSize = 256 << 10
		pq, err := file.NewParquetReader(io.NewSectionReader(f, 0, f.Size()), file.WithReadProps(props))
		if err != nil {
			f.Close()
			return files, fmt.Errorf("read %s: %w", in.Name, err)
		}
		fr, err := pqarrow.NewFileReader(pq, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			f.Close()
			return files, fmt.Errorf("read %s: %w", in.Name, err)
		}
		sc, err := fr.Schema()
		if err != nil {
			f.Close()
			return files, fmt.Errorf("%w: %s: %v", ErrSchema, in.Name, err)
		}
		meta := map[string]string{}
		kv := pq.MetaData().KeyValueMetadata()
		for j, k := range kv.Keys() {
			meta[k] = kv.Values()[j]
		}
		files = append(files, inputFile{name: in.Name, f: f, pq: pq, arrow: sc, meta: meta})
	}
	return files, nil
}

func writerProps(opt Options, root *pqschema.GroupNode, extra ...parquet.WriterProperty) *parquet.WriterProperties {
	p := []parquet.WriterProperty{
		parquet.WithAllocator(opt.Allocator),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithDictionaryDefault(false),
		parquet.WithDataPageSize(1 << 20),
		parquet.WithMaxRowGroupLength(math.MaxInt32),
		parquet.WithStats(true),
		parquet.WithPageIndexEnabled(true),
		parquet.WithRootName(root.Name()),
		parquet.WithRootRepetition(root.RepetitionType()),
	}
	if opt.ZstdLevel != 0 {
		p = append(p, parquet.WithCompressionLevel(opt.ZstdLevel))
	}
	if opt.CreatedBy != "" {
		p = append(p, parquet.WithCreatedBy(opt.CreatedBy))
	}
	return parquet.NewWriterProperties(append(p, extra...)...)
}

// sortingColumns states the sort order in each row group's metadata (sorting_columns), for
// the leading keys that are primitive columns.
func sortingColumns(sortKeys []columnPath, ps *pqschema.Schema) []parquet.SortingColumn {
	var cols []parquet.SortingColumn
	for _, k := range sortKeys {
		idx := ps.ColumnIndexByName(k.name)
		if idx < 0 {
			break // a struct or list column: the order beyond it cannot be stated
		}
		cols = append(cols, parquet.SortingColumn{ColumnIdx: int32(idx)})
	}
	return cols
}

// dictionaryColumns turns on dictionary encoding for the string columns (at the top level or
// in structs) that repeat values in the first batch written: at most one distinct value in ten.
// Elsewhere dictionary encoding costs more time than it saves bytes after zstd.
func dictionaryColumns(first arrow.RecordBatch) []parquet.WriterProperty {
	const sample = 4096
	var out []parquet.WriterProperty
	var walk func(path string, arr arrow.Array)
	walk = func(path string, arr arrow.Array) {
		switch a := arr.(type) {
		case *array.Struct:
			st := a.DataType().(*arrow.StructType)
			for i := range a.NumField() {
				walk(path+"."+st.Field(i).Name, a.Field(i))
			}
		case *array.String:
			n := min(a.Len(), sample)
			seen := map[string]struct{}{}
			valid := 0
			for i := range n {
				if a.IsValid(i) {
					seen[a.Value(i)] = struct{}{}
					valid++
				}
			}
			if valid >= 100 && len(seen)*10 <= valid {
				out = append(out, parquet.WithDictionaryFor(strings.TrimPrefix(path, "."), true))
			}
		}
	}
	for i, f := range first.Schema().Fields() {
		walk("."+f.Name, first.Column(i))
	}
	return out
}

// keys are the resolved sort and deduplication columns of a table.
type keys struct {
	sort  []columnPath
	dedup dedupKey
}

func (k keys) encoder() keyEncoder { return keyEncoder{sort: k.sort, dedup: k.dedup} }

func (k keys) names() (sortNames, dedupNames []string) {
	for _, p := range k.sort {
		sortNames = append(sortNames, p.name)
	}
	if k.dedup.id != nil {
		dedupNames = append(dedupNames, k.dedup.id.name)
	}
	for _, p := range k.dedup.fallback {
		dedupNames = append(dedupNames, p.name)
	}
	return sortNames, dedupNames
}

func resolveKeys(s *arrow.Schema, opt Options) (keys, error) {
	var k keys
	pick := func(names []string) error {
		for _, n := range names {
			p, ok := resolvePath(s, n)
			if !ok {
				continue
			}
			if !keyable(p.typ) {
				return fmt.Errorf("sort key %s: type %s cannot be sorted by", n, p.typ)
			}
			k.sort = append(k.sort, p)
		}
		return nil
	}
	if err := pick(opt.SortKeys); err != nil {
		return k, err
	}
	if len(k.sort) == 0 {
		if err := pick(opt.SortFallback); err != nil {
			return k, err
		}
	}
	if opt.IDColumn != "" {
		if p, ok := resolvePath(s, opt.IDColumn); ok && len(p.indices) == 1 {
			if p.typ.ID() != arrow.STRING {
				return k, fmt.Errorf("id column %s: type %s, want a string", opt.IDColumn, p.typ)
			}
			k.dedup.id = &p
		}
	}
	for _, n := range opt.DedupFallback {
		p, ok := resolvePath(s, n)
		if !ok {
			continue
		}
		if !keyable(p.typ) {
			return k, fmt.Errorf("deduplication column %s: type %s cannot be a key", n, p.typ)
		}
		k.dedup.fallback = append(k.dedup.fallback, p)
	}
	if k.dedup.id == nil && len(k.dedup.fallback) == 0 {
		return k, fmt.Errorf("no deduplication key: the table has neither the id column %q nor any of %v", opt.IDColumn, opt.DedupFallback)
	}
	return k, nil
}

func recordBytes(rec arrow.RecordBatch) int64 { return util.TotalRecordSize(rec) }
