package rewrite

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// sorter reads the inputs, keeps the first row of each identity, and collects the rest into
// sorted runs.
type sorter struct {
	ctx    context.Context
	mem    memory.Allocator
	schema *arrow.Schema
	keys   keys
	opt    Options
	hash   hasher
	seen   map[[2]uint64]struct{}

	rowsIn, rowsOut int64
	readBytes       int64 // Arrow bytes of the batches read, for the bytes per row
	cur             run
	spilled         []string // files of spilled sorted runs
	scratch         []byte
}

// run is a set of batches and the sort keys of their surviving rows.
type run struct {
	batches []arrow.RecordBatch
	starts  []int // first row of each batch in the run
	rows    int
	bytes   int64
	arena   []byte
	refs    []ref
}

// ref is one surviving row of a run.
type ref struct {
	prefix uint64 // the key's first 8 bytes, big-endian, for quick comparisons
	off    uint32 // the key in the arena
	n      uint32
	row    uint32 // the row's index in the run
}

func (r *run) key(x ref) []byte { return r.arena[x.off : x.off+x.n] }

func (r *run) compare(a, b ref) int {
	if a.prefix != b.prefix {
		return cmp.Compare(a.prefix, b.prefix)
	}
	if c := bytes.Compare(r.key(a), r.key(b)); c != 0 {
		return c
	}
	return cmp.Compare(a.row, b.row)
}

func (r *run) release() {
	for _, b := range r.batches {
		b.Release()
	}
	*r = run{arena: r.arena[:0], refs: r.refs[:0]}
}

func (s *sorter) close() {
	s.cur.release()
	for _, f := range s.spilled {
		os.Remove(f)
	}
	s.spilled = nil
}

func (s *sorter) readFile(f inputFile) error {
	fr, err := pqarrow.NewFileReader(f.pq, pqarrow.ArrowReadProperties{BatchSize: int64(s.opt.BatchRows)}, s.mem)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.name, err)
	}
	rr, err := fr.GetRecordReader(s.ctx, nil, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.name, err)
	}
	defer rr.Release()
	conf := newConformer(f.arrow, s.schema)
	enc := s.keys.encoder()
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		rec, err := rr.Read()
		if rec == nil {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read %s: %w", f.name, err)
			}
			return nil
		}
		batch := conf.conform(s.mem, rec)
		err = s.add(batch, enc)
		batch.Release()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
}

// add deduplicates one batch into the current run, spilling the run when it is full.
func (s *sorter) add(rec arrow.RecordBatch, enc keyEncoder) error {
	rk, err := enc.bind(rec)
	if err != nil {
		return err
	}
	n := int(rec.NumRows())
	r := &s.cur
	kept := 0
	for i := range n {
		s.scratch = rk.dedup.appendKey(s.scratch[:0], i)
		h := s.hash.sum(s.scratch)
		if _, dup := s.seen[h]; dup {
			continue
		}
		s.seen[h] = struct{}{}
		off := len(r.arena)
		for _, f := range rk.sort {
			r.arena = f(r.arena, i)
		}
		r.arena = append(r.arena, s.scratch...)
		k := r.arena[off:]
		var p [8]byte
		copy(p[:], k)
		r.refs = append(r.refs, ref{prefix: binary.BigEndian.Uint64(p[:]), off: uint32(off), n: uint32(len(k)), row: uint32(r.rows + i)})
		kept++
	}
	s.rowsIn += int64(n)
	s.rowsOut += int64(kept)
	size := recordBytes(rec)
	s.readBytes += size
	if kept > 0 {
		rec.Retain()
		r.batches = append(r.batches, rec)
		r.starts = append(r.starts, r.rows)
		r.rows += n
		r.bytes += size
	}
	if r.bytes >= s.opt.SortBufferBytes || len(r.arena) > math.MaxUint32/2 || r.rows > math.MaxInt32/2 {
		return s.spill()
	}
	return nil
}

// Batches made while sorting are sized in Arrow bytes rather than rows, so that memory does not
// depend on how wide a table's rows are: output batches of chunkBytes, and spilled runs in
// batches of spillBatchBytes (the merge holds one batch of every run).
const (
	chunkBytes      = 4 << 20
	spillBatchBytes = 1 << 20
)

// chunkRows is how many rows make about size bytes of Arrow memory.
func (s *sorter) chunkRows(size int64) int {
	perRow := s.readBytes / max(s.rowsIn, 1)
	return int(min(max(size/max(perRow, 1), 64), 64*1024))
}

// spill sorts the current run and writes it to a temporary Arrow IPC file.
func (s *sorter) spill() error {
	if len(s.cur.refs) == 0 {
		s.cur.release()
		return nil
	}
	f, err := os.CreateTemp(s.opt.SpillDir, "compactor-run-*.arrow")
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	s.spilled = append(s.spilled, f.Name())
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(s.schema), ipc.WithAllocator(s.mem), ipc.WithLZ4())
	if err != nil {
		f.Close()
		return fmt.Errorf("spill: %w", err)
	}
	err = s.cur.emit(s.ctx, s.mem, s.schema, s.chunkRows(spillBatchBytes), w.Write)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spill: %w", err)
	}
	return nil
}

// emit sorts the run and hands its surviving rows, in order, to out in batches of chunk rows.
// The run is released.
func (r *run) emit(ctx context.Context, mem memory.Allocator, schema *arrow.Schema, chunk int, out func(arrow.RecordBatch) error) error {
	defer r.release()
	slices.SortFunc(r.refs, r.compare)
	idx := make([]int32, len(r.refs))
	for i, x := range r.refs {
		idx[i] = int32(x.row)
	}
	// One array per column over the whole run; the batches are let go column by column so the
	// run is held about once, not twice.
	ncols := schema.NumFields()
	chunks := make([][]arrow.Array, ncols)
	for _, b := range r.batches {
		for j := range ncols {
			c := b.Column(j)
			c.Retain()
			chunks[j] = append(chunks[j], c)
		}
		b.Release()
	}
	r.batches = nil
	cols := make([]arrow.Array, ncols)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j := range ncols {
		if len(chunks[j]) == 1 {
			cols[j] = chunks[j][0]
			continue
		}
		c, err := array.Concatenate(chunks[j], mem)
		for _, a := range chunks[j] {
			a.Release()
		}
		if err != nil {
			return fmt.Errorf("concatenate %s: %w", schema.Field(j).Name, err)
		}
		cols[j] = c
	}
	indices := array.NewInt32Data(array.NewData(arrow.PrimitiveTypes.Int32, len(idx),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(idx))}, nil, 0, 0))
	defer indices.Release()
	for start := 0; start < len(idx); start += chunk {
		end := min(start+chunk, len(idx))
		part := array.NewSlice(indices, int64(start), int64(end))
		rec, err := take(ctx, schema, cols, part)
		part.Release()
		if err != nil {
			return err
		}
		err = out(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// take builds a batch of schema from the rows of cols at indices.
func take(ctx context.Context, schema *arrow.Schema, cols []arrow.Array, indices arrow.Array) (arrow.RecordBatch, error) {
	out := make([]arrow.Array, len(cols))
	defer func() {
		for _, c := range out {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j, c := range cols {
		t, err := compute.TakeArray(ctx, c, indices)
		if err != nil {
			return nil, fmt.Errorf("take %s: %w", schema.Field(j).Name, err)
		}
		out[j] = t
	}
	return array.NewRecordBatch(schema, out, int64(indices.Len())), nil
}

// runReader reads one spilled run back, batch by batch, with the keys of the current batch.
type runReader struct {
	id   int
	f    *os.File
	r    *ipc.FileReader
	next int
	cur  arrow.RecordBatch
	row  int
	keys []byte
	offs []int
}

func (rr *runReader) key() []byte { return rr.keys[rr.offs[rr.row]:rr.offs[rr.row+1]] }

// load moves to the next batch; false at the end of the run.
func (rr *runReader) load(enc keyEncoder) (bool, error) {
	if rr.cur != nil {
		rr.cur.Release()
		rr.cur = nil
	}
	if rr.next >= rr.r.NumRecords() {
		return false, nil
	}
	rec, err := rr.r.RecordAt(rr.next)
	if err != nil {
		return false, fmt.Errorf("read sorted run: %w", err)
	}
	rr.next++
	rk, err := enc.bind(rec)
	if err != nil {
		rec.Release()
		return false, err
	}
	rr.cur, rr.row = rec, 0
	rr.keys, rr.offs = rr.keys[:0], append(rr.offs[:0], 0)
	for i := range int(rec.NumRows()) {
		rr.keys = rk.sortKey(rr.keys, i)
		rr.offs = append(rr.offs, len(rr.keys))
	}
	if rec.NumRows() == 0 {
		return rr.load(enc)
	}
	return true, nil
}

func (rr *runReader) close() {
	if rr.cur != nil {
		rr.cur.Release()
	}
	if rr.r != nil {
		rr.r.Close()
	}
	if rr.f != nil {
		rr.f.Close()
	}
}

type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key(), h[j].key()); c != 0 {
		return c < 0
	}
	return h[i].id < h[j].id
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// piece is a contiguous range of one batch of a run that an output batch takes rows from.
type piece struct {
	rec        arrow.RecordBatch
	start, end int
}

// merge reads the spilled runs back and hands their rows to out in one sorted order. Rows with
// equal keys keep the order of their runs, so the result is the same as one big sort.
func (s *sorter) merge(out func(arrow.RecordBatch) error) error {
	enc := s.keys.encoder()
	readers := make([]*runReader, 0, len(s.spilled))
	defer func() {
		for _, rr := range readers {
			rr.close()
		}
	}()
	var h runHeap
	for i, name := range s.spilled {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("open sorted run: %w", err)
		}
		rr := &runReader{id: i, f: f}
		readers = append(readers, rr)
		if rr.r, err = ipc.NewFileReader(f, ipc.WithAllocator(s.mem)); err != nil {
			return fmt.Errorf("open sorted run: %w", err)
		}
		ok, err := rr.load(enc)
		if err != nil {
			return err
		}
		if ok {
			h = append(h, rr)
		}
	}
	heap.Init(&h)
	chunk := s.chunkRows(chunkBytes)
	open := make([]int, len(readers))
	type at struct{ piece, row int32 }
	var (
		pieces []piece
		order  []at
	)
	flush := func() error {
		defer func() {
			for _, p := range pieces {
				p.rec.Release()
			}
			pieces, order = pieces[:0], order[:0]
		}()
		if len(order) == 0 {
			return nil
		}
		base := make([]int32, len(pieces))
		var n int32
		for i, p := range pieces {
			base[i] = n
			n += int32(p.end - p.start)
		}
		idx := make([]int32, len(order))
		for i, o := range order {
			idx[i] = base[o.piece] + o.row
		}
		cols := make([]arrow.Array, s.schema.NumFields())
		defer func() {
			for _, c := range cols {
				if c != nil {
					c.Release()
				}
			}
		}()
		for j := range cols {
			parts := make([]arrow.Array, len(pieces))
			for i, p := range pieces {
				parts[i] = array.NewSlice(p.rec.Column(j), int64(p.start), int64(p.end))
			}
			c, err := array.Concatenate(parts, s.mem)
			for _, p := range parts {
				p.Release()
			}
			if err != nil {
				return fmt.Errorf("concatenate %s: %w", s.schema.Field(j).Name, err)
			}
			cols[j] = c
		}
		indices := array.NewInt32Data(array.NewData(arrow.PrimitiveTypes.Int32, len(idx),
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(idx))}, nil, 0, 0))
		defer indices.Release()
		rec, err := take(s.ctx, s.schema, cols, indices)
		if err != nil {
			return err
		}
		defer rec.Release()
		return out(rec)
	}
	for h.Len() > 0 {
		for i := range open {
			open[i] = -1
		}
		for h.Len() > 0 && len(order) < chunk {
			rr := h[0]
			pi := open[rr.id]
			if pi < 0 {
				rr.cur.Retain()
				pieces = append(pieces, piece{rec: rr.cur, start: rr.row, end: rr.row})
				pi = len(pieces) - 1
				open[rr.id] = pi
			}
			p := &pieces[pi]
			order = append(order, at{int32(pi), int32(rr.row - p.start)})
			p.end++
			rr.row++
			if rr.row < int(rr.cur.NumRows()) {
				heap.Fix(&h, 0)
				continue
			}
			open[rr.id] = -1
			ok, err := rr.load(enc)
			if err != nil {
				return err
			}
			if ok {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
			}
		}
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}
