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
	"os"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// The sort is a merge sort: every batch read is deduplicated and sorted on its own as it comes
// in, and the sorted batches are merged. When the sorted batches held in memory reach
// SortBufferBytes they are merged into one sorted run on local disk; at the end the runs on disk
// and the batches in memory are merged into the output. Merging takes rows in contiguous ranges
// of each sorted batch, so memory holds the sorted batches once, not a second concatenated copy.

// Batches made while merging are sized in Arrow bytes rather than rows, so that memory does not
// depend on how wide a table's rows are: output batches of chunkBytes, and spilled runs in
// batches of spillBatchBytes (the merge holds one batch of every run).
const (
	chunkBytes      = 4 << 20
	spillBatchBytes = 1 << 20
)

// sorter reads the inputs, keeps the first row of each identity, and sorts the rest.
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

	batches []*sortedBatch // sorted batches in memory, in read order
	bytes   int64          // their Arrow size
	spilled []string       // files of the sorted runs on disk, in read order

	scratch []byte
	arena   []byte
	refs    []ref
}

// sortedBatch is a batch of distinct rows in key order, with the key of each row.
type sortedBatch struct {
	rec   arrow.RecordBatch
	arena []byte
	keys  []ref // keys[i] is the key of row i
}

func (b *sortedBatch) key(i int) []byte { k := b.keys[i]; return b.arena[k.off : k.off+k.n] }

// ref is the key of one row: its place in an arena and its first 16 bytes for quick comparisons.
type ref struct {
	p0, p1 uint64
	off    uint32
	n      uint32
	row    uint32
}

func compareRefs(arena []byte, a, b ref) int {
	if a.p0 != b.p0 {
		return cmp.Compare(a.p0, b.p0)
	}
	if a.p1 != b.p1 {
		return cmp.Compare(a.p1, b.p1)
	}
	if c := bytes.Compare(arena[a.off:a.off+a.n], arena[b.off:b.off+b.n]); c != 0 {
		return c
	}
	return cmp.Compare(a.row, b.row)
}

func newRef(arena []byte, off, row int) ref {
	k := arena[off:]
	var p [16]byte
	copy(p[:], k)
	return ref{p0: binary.BigEndian.Uint64(p[:8]), p1: binary.BigEndian.Uint64(p[8:]), off: uint32(off), n: uint32(len(k)), row: uint32(row)}
}

func (s *sorter) close() {
	for _, b := range s.batches {
		b.rec.Release()
	}
	s.batches = nil
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

// add drops the rows of rec seen before, sorts the others and keeps them as a sorted batch,
// spilling the batches in memory to a sorted run when they are too many.
func (s *sorter) add(rec arrow.RecordBatch, enc keyEncoder) error {
	rk, err := enc.bind(rec)
	if err != nil {
		return err
	}
	n := int(rec.NumRows())
	arena, refs := s.arena[:0], s.refs[:0]
	for i := range n {
		s.scratch = rk.dedup.appendKey(s.scratch[:0], i)
		h := s.hash.sum(s.scratch)
		if _, dup := s.seen[h]; dup {
			continue
		}
		s.seen[h] = struct{}{}
		off := len(arena)
		for _, f := range rk.sort {
			arena = f(arena, i)
		}
		arena = append(arena, s.scratch...)
		refs = append(refs, newRef(arena, off, i))
	}
	s.arena, s.refs = arena, refs
	s.rowsIn += int64(n)
	s.rowsOut += int64(len(refs))
	s.readBytes += recordBytes(rec)
	if len(refs) == 0 {
		return nil
	}
	slices.SortFunc(refs, func(a, b ref) int { return compareRefs(arena, a, b) })
	sorted := make([]ref, len(refs))
	idx := make([]int32, len(refs))
	sortedArena := make([]byte, 0, len(arena))
	for i, r := range refs {
		idx[i] = int32(r.row)
		off := len(sortedArena)
		sortedArena = append(sortedArena, arena[r.off:r.off+r.n]...)
		sorted[i] = ref{p0: r.p0, p1: r.p1, off: uint32(off), n: r.n, row: uint32(i)}
	}
	out := rec
	if !isIdentity(idx) || len(idx) != n {
		indices := int32Array(idx)
		out, err = take(s.ctx, s.schema, rec.Columns(), indices)
		indices.Release()
		if err != nil {
			return err
		}
	} else {
		rec.Retain()
	}
	s.batches = append(s.batches, &sortedBatch{rec: out, arena: sortedArena, keys: sorted})
	s.bytes += recordBytes(out)
	if s.bytes >= s.opt.SortBufferBytes {
		return s.spill()
	}
	return nil
}

func isIdentity(idx []int32) bool {
	for i, v := range idx {
		if int(v) != i {
			return false
		}
	}
	return true
}

func int32Array(idx []int32) arrow.Array {
	return array.NewInt32Data(array.NewData(arrow.PrimitiveTypes.Int32, len(idx),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(idx))}, nil, 0, 0))
}

// Batches made while merging are sized by the bytes per row seen so far.
func (s *sorter) chunkRows(size int64) int {
	perRow := s.readBytes / max(s.rowsIn, 1)
	return int(min(max(size/max(perRow, 1), 64), 64*1024))
}

// spill merges the sorted batches in memory into one sorted run in a temporary Arrow IPC file.
func (s *sorter) spill() error {
	if len(s.batches) == 0 {
		return nil
	}
	var sources []source
	for _, b := range s.batches {
		sources = append(sources, &memSource{b: b})
	}
	s.batches, s.bytes = nil, 0
	name, err := s.writeRun(sources)
	if err != nil {
		return err
	}
	s.spilled = append(s.spilled, name)
	return nil
}

// mergeRuns merges the first n spilled runs into one that takes their place.
func (s *sorter) mergeRuns(n int) error {
	sources, err := s.openRuns(s.spilled[:n])
	if err != nil {
		return err
	}
	name, err := s.writeRun(sources)
	if err != nil {
		return err
	}
	for _, old := range s.spilled[:n] {
		os.Remove(old)
	}
	s.spilled = append([]string{name}, s.spilled[n:]...)
	return nil
}

// writeRun merges sources into a new temporary Arrow IPC file and returns its name.
func (s *sorter) writeRun(sources []source) (string, error) {
	f, err := os.CreateTemp(s.opt.SpillDir, "compactor-run-*.arrow")
	if err != nil {
		closeSources(sources)
		return "", fmt.Errorf("spill: %w", err)
	}
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(s.schema), ipc.WithAllocator(s.mem), ipc.WithLZ4())
	if err == nil {
		err = s.merge(sources, s.chunkRows(spillBatchBytes), w.Write)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	} else {
		closeSources(sources)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("spill: %w", err)
	}
	return f.Name(), nil
}

// maxFanIn bounds how many sorted runs one merge reads at once (each holds a batch in memory);
// more runs are first merged into fewer, longer ones.
const maxFanIn = 32

// openRuns opens spilled runs as merge sources.
func (s *sorter) openRuns(names []string) ([]source, error) {
	var sources []source
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			closeSources(sources)
			return nil, fmt.Errorf("open sorted run: %w", err)
		}
		r, err := ipc.NewFileReader(f, ipc.WithAllocator(s.mem))
		if err != nil {
			f.Close()
			closeSources(sources)
			return nil, fmt.Errorf("open sorted run: %w", err)
		}
		sources = append(sources, &runSource{f: f, r: r, enc: s.keys.encoder()})
	}
	return sources, nil
}

// finish merges the runs on disk and the batches in memory into out.
func (s *sorter) finish(out func(arrow.RecordBatch) error) error {
	// Merge the oldest runs into one until a final merge reads at most maxFanIn of them; the
	// merged run takes their place, first, so rows with equal keys keep their read order.
	for len(s.spilled) > maxFanIn {
		if err := s.mergeRuns(maxFanIn); err != nil {
			return err
		}
	}
	sources, err := s.openRuns(s.spilled)
	if err != nil {
		return err
	}
	for _, b := range s.batches {
		sources = append(sources, &memSource{b: b})
	}
	s.batches, s.bytes = nil, 0
	return s.merge(sources, s.chunkRows(chunkBytes), out)
}

// source is a sorted sequence of batches to merge.
type source interface {
	// next returns the next batch, or nil at the end; the merge releases it.
	next() (*sortedBatch, error)
	close()
}

// memSource is one sorted batch in memory.
type memSource struct{ b *sortedBatch }

func (m *memSource) next() (*sortedBatch, error) {
	b := m.b
	m.b = nil
	return b, nil
}

func (m *memSource) close() {
	if m.b != nil {
		m.b.rec.Release()
		m.b = nil
	}
}

// runSource reads a spilled run back batch by batch, computing the keys again.
type runSource struct {
	f   *os.File
	r   *ipc.FileReader
	enc keyEncoder
	i   int
}

func (rs *runSource) close() {
	rs.r.Close()
	rs.f.Close()
}

func (rs *runSource) next() (*sortedBatch, error) {
	for rs.i < rs.r.NumRecords() {
		rec, err := rs.r.RecordAt(rs.i)
		if err != nil {
			return nil, fmt.Errorf("read sorted run: %w", err)
		}
		rs.i++
		if rec.NumRows() == 0 {
			rec.Release()
			continue
		}
		rk, err := rs.enc.bind(rec)
		if err != nil {
			rec.Release()
			return nil, err
		}
		b := &sortedBatch{rec: rec, keys: make([]ref, rec.NumRows())}
		for i := range int(rec.NumRows()) {
			off := len(b.arena)
			b.arena = rk.sortKey(b.arena, i)
			b.keys[i] = ref{off: uint32(off), n: uint32(len(b.arena) - off)}
		}
		return b, nil
	}
	return nil, nil
}

func closeSources(sources []source) {
	for _, s := range sources {
		s.close()
	}
}

// cursor is where the merge is in one source.
type cursor struct {
	id  int
	src source
	b   *sortedBatch
	row int
}

func (c *cursor) key() []byte { return c.b.key(c.row) }

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].key(), h[j].key()); c != 0 {
		return c < 0
	}
	return h[i].id < h[j].id
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// piece is a contiguous range of one sorted batch that an output batch takes rows from.
type piece struct {
	rec        arrow.RecordBatch
	start, end int
}

// merge hands the rows of the sources to out in one sorted order, in batches of up to chunk
// rows. Rows with equal keys come in source order, so the result is the same however the input
// was cut into runs. The sources are closed.
func (s *sorter) merge(sources []source, chunk int, out func(arrow.RecordBatch) error) error {
	var h cursorHeap
	defer func() {
		for _, c := range h {
			if c.b != nil {
				c.b.rec.Release()
			}
		}
		closeSources(sources)
	}()
	for i, src := range sources {
		b, err := src.next()
		if err != nil {
			return err
		}
		if b != nil {
			h = append(h, &cursor{id: i, src: src, b: b})
		}
	}
	heap.Init(&h)
	open := make([]int, len(sources))
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
		if len(pieces) == 1 {
			p := pieces[0]
			rec := p.rec.NewSlice(int64(p.start), int64(p.end))
			defer rec.Release()
			return out(rec)
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
		indices := int32Array(idx)
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
			c := h[0]
			pi := open[c.id]
			if pi < 0 {
				c.b.rec.Retain()
				pieces = append(pieces, piece{rec: c.b.rec, start: c.row, end: c.row})
				pi = len(pieces) - 1
				open[c.id] = pi
			}
			p := &pieces[pi]
			order = append(order, at{int32(pi), int32(c.row - p.start)})
			p.end++
			c.row++
			if c.row < int(c.b.rec.NumRows()) {
				heap.Fix(&h, 0)
				continue
			}
			open[c.id] = -1
			c.b.rec.Release()
			b, err := c.src.next()
			if err != nil {
				c.b = nil
				return err
			}
			if b == nil {
				c.b = nil
				heap.Pop(&h)
				continue
			}
			c.b, c.row = b, 0
			heap.Fix(&h, 0)
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
