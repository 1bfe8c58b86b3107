// Package compactor rewrites sealed lake partitions into large, deduplicated, sorted files and
// swaps them in through the Hive Metastore.
//
// # Where compacted files go
//
// Generation N of partition dt=D/hour=H of table T is written to
//
//	<warehouse>/<db>.db/_compacted/T/dt=D/hour=H/g<N>/c<N>-<i>.parquet
//
// beside the partition directory <warehouse>/<db>.db/T/dt=D/hour=H that the lakewriter commits
// to. The directory is outside every table and hidden ("_"), like the lakewriter's _staging:
// Trino and Hive read only the locations the metastore gives them, and nothing that scans a
// table directory (Spark's partition discovery, MSCK REPAIR, Trino's sync_partition_metadata)
// sees it, so it can never be read as part of another partition or as a partition of its own. It
// is on the same file system as the table, so no copy is needed to swap it in.
//
// # Swap, with a metastore
//
// The partition is pointed at g<N> by one alter_partition: a query sees the old files or the new
// ones, never both. The lakewriter keeps committing late files to the partition directory, where
// no reader sees them until the next compaction merges them in (the manifest of each generation
// lists the partition-directory files it holds; the others are late). Replaced files (the
// previous generation, the partition-directory files already merged) are deleted Grace after the
// swap; nothing the metastore points at is ever deleted.
//
// # Swap, without a metastore (local disk)
//
// Readers list the partition directory itself, so g<N> and the partition directory are swapped
// by an atomic rename exchange (renameat2 RENAME_EXCHANGE): g<N>'s path then holds the replaced
// files. A file the lakewriter committed in the instant before the exchange lands among them;
// every scan moves such files back into the partition directory (they are late files), and the
// replaced files are deleted Grace after the swap. Readers that listed the directory before the
// swap may fail to open a replaced file (its path changed) and must retry; they never see a
// mix. HDFS has no exchange, so an HDFS lake needs the metastore.
//
// # Crashes
//
// Every step is redone or skipped by looking at the lake: a generation directory newer than the
// current one was never swapped in and is removed and written again; the current generation is
// the one the metastore (or the partition directory's manifest) names. A crash at any step
// followed by a rerun ends with one compacted copy.
package compactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clickstream/clickstream/compactor/internal/rewrite"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Compactor is one running compactor.
type Compactor struct {
	cfg       Config
	log       *slog.Logger
	health    *telemetry.Health
	m         *metrics
	lake      *lake.Lake
	schemas   *schemastore.Live // nil: registry.Default()
	closeOnce sync.Once
	mu        sync.Mutex // one CompactOnce at a time

	now  func() time.Time
	hook func(step string) error // fault injection for tests: an error aborts the compaction there
}

// New checks cfg and opens the lake (file system and metastore); nothing is compacted until Run
// or CompactOnce.
func New(cfg Config, deps run.Deps) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A nil *prometheus.Registry in an interface is not a nil interface: pass none instead.
	var reg prometheus.Registerer
	if deps.Reg != nil {
		reg = deps.Reg
	}
	l, err := lake.Open(context.Background(), cfg.Lake, "clickstream_compactor", reg)
	if err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Compactor{
		cfg: cfg, log: log, health: deps.Health, m: newMetrics(reg), lake: l,
		schemas: deps.Schemas, now: time.Now, hook: func(string) error { return nil },
	}
	if c.health != nil {
		c.health.Set("lake", "")
	}
	return c, nil
}

// Close releases the lake. Run closes it when it returns; callers of CompactOnce alone close it
// themselves.
func (c *Compactor) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.lake.Close() })
	return err
}

// Run compacts what is due every Interval until ctx is cancelled (or once, with Config.Once).
// A compaction interrupted by shutdown is abandoned; the next run redoes it.
func (c *Compactor) Run(ctx context.Context) error {
	defer c.Close()
	if c.cfg.Once {
		rep, err := c.CompactOnce(ctx)
		c.log.Info("compacted once", "partitions", len(rep.Compacted), "deleted", rep.Deleted, "errors", rep.Errors)
		return err
	}
	c.log.Info("started", "interval", c.cfg.Interval, "lateness", c.cfg.Lateness, "grace", c.cfg.Grace,
		"metastore", c.lake.Metastore != nil)
	for {
		if _, err := c.CompactOnce(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("scan finished with errors; failed partitions are retried next scan", "err", err)
		}
		select {
		case <-ctx.Done():
			c.log.Info("stopped")
			return nil
		case <-time.After(c.cfg.Interval):
		}
	}
}

// Report says what one CompactOnce did.
type Report struct {
	Partitions int                 // partitions looked at
	Compacted  []PartitionReport   // partitions swapped to a new generation
	Deleted    int                 // replaced files and directories deleted
	Errors     int                 // partitions that failed (see the returned error)
	Pending    map[string][]string // table → partitions due but not compacted because of an error
}

// PartitionReport describes one compaction.
type PartitionReport struct {
	Table      string
	Partition  lake.Partition
	Generation int
	Location   string // the directory readers now read
	FilesIn    int
	FilesOut   int
	RowsIn     int64
	RowsOut    int64
	Duplicates int64
	BytesIn    int64
	BytesOut   int64
	Duration   time.Duration
}

// CompactOnce looks at every partition once: it deletes replaced files whose grace period is
// over and compacts the sealed partitions that are due. A failing partition does not stop the
// others; the errors are joined. Calls are serialised; only one compactor may work on a lake at
// a time (run one replica, or a Job that does not overlap itself).
func (c *Compactor) CompactOnce(ctx context.Context) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := Report{Pending: map[string][]string{}}
	now := c.now()
	tables, err := c.tables()
	if err != nil {
		c.m.errors.WithLabelValues("", "scan").Inc()
		return rep, err
	}
	var errs []error
	for _, table := range tables {
		parts, err := c.partitions(table, now)
		if err != nil {
			c.m.errors.WithLabelValues(table, "scan").Inc()
			errs = append(errs, err)
			continue
		}
		pending, conflicts, counted, files, most := 0, 0, 0, 0, 0
		for _, p := range parts {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			rep.Partitions++
			pr, deleted, due, visible, err := c.partition(ctx, table, p, now, false)
			rep.Deleted += deleted
			if visible >= 0 {
				counted++
				files += visible
				most = max(most, visible)
			}
			if err != nil {
				rep.Errors++
				errs = append(errs, fmt.Errorf("%s/%s: %w", table, p, err))
				if due {
					pending++
					rep.Pending[table] = append(rep.Pending[table], p.String())
				}
				if errors.Is(err, rewrite.ErrSchema) {
					conflicts++
				}
				continue
			}
			if pr != nil {
				rep.Compacted = append(rep.Compacted, *pr)
			}
		}
		c.m.pending.WithLabelValues(table).Set(float64(pending))
		c.m.schemaConflicts.WithLabelValues(table).Set(float64(conflicts))
		c.m.partitionsScanned.WithLabelValues(table).Set(float64(counted))
		c.m.dataFiles.WithLabelValues(table).Set(float64(files))
		c.m.filesMax.WithLabelValues(table).Set(float64(most))
	}
	c.m.lastScan.SetToCurrentTime()
	return rep, errors.Join(errs...)
}

// CompactPartition compacts one partition now, sealed or not, if it has files the current
// generation does not hold (operators, and tests that cannot wait for an hour to seal). It
// returns nil when there was nothing to do. Replaced files past their grace period are deleted
// as in CompactOnce.
func (c *Compactor) CompactPartition(ctx context.Context, table string, p lake.Partition) (*PartitionReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pr, _, _, _, err := c.partition(ctx, table, p, c.now(), true)
	return pr, err
}

// tables lists the tables to compact.
func (c *Compactor) tables() ([]string, error) {
	if len(c.cfg.Tables) > 0 {
		return c.cfg.Tables, nil
	}
	entries, err := c.lake.FS.ReadDir(c.lake.Layout.DatabaseDir())
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !lake.Hidden(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// partitions lists the partition directories of a table within the lookback.
func (c *Compactor) partitions(table string, now time.Time) ([]lake.Partition, error) {
	dir := c.lake.Layout.TableDir(table)
	days, err := c.lake.FS.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", table, err)
	}
	var out []lake.Partition
	for _, d := range days {
		date, ok := strings.CutPrefix(d.Name(), lake.PartitionDate+"=")
		if !d.IsDir() || !ok {
			continue
		}
		if day, err := time.Parse("2006-01-02", date); err != nil || c.cfg.Lookback > 0 && day.Add(24*time.Hour).Before(now.Add(-c.cfg.Lookback)) {
			continue
		}
		hours, err := c.lake.FS.ReadDir(path.Join(dir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", table, d.Name(), err)
		}
		for _, h := range hours {
			p, err := lake.ParsePartition(d.Name() + "/" + h.Name())
			if !h.IsDir() || err != nil {
				continue
			}
			if c.cfg.Lookback > 0 && p.End().Before(now.Add(-c.cfg.Lookback)) {
				continue
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// partState is what the lake says about one partition.
type partState struct {
	table    string
	part     lake.Partition
	dir      string    // the partition directory the lakewriter commits to
	genRoot  string    // where its generations are written
	gen      int       // the current generation; 0: never compacted
	cur      *manifest // its manifest; nil for generation 0 or when unreadable
	location string    // the directory readers read
	files    []fs.FileInfo
	gens     []int // generation directories that exist
}

func genName(n int) string { return fmt.Sprintf("g%06d", n) }

func (s *partState) genDir(n int) string { return path.Join(s.genRoot, genName(n)) }

// partition handles one partition: rescue and cleanup of earlier swaps, then compaction when
// due. due reports whether it needed compacting (for the pending gauge); visible is the number
// of data files readers see in it afterwards, -1 when unknown (its state unreadable, or not
// registered in the metastore yet).
func (c *Compactor) partition(ctx context.Context, table string, p lake.Partition, now time.Time, force bool) (pr *PartitionReport, deleted int, due bool, visible int, err error) {
	st, err := c.state(ctx, table, p)
	if err != nil || st == nil {
		if err != nil {
			c.m.errors.WithLabelValues(table, "plan").Inc()
		}
		return nil, 0, false, -1, err
	}
	deleted, err = c.cleanup(st, now)
	c.m.deleted.WithLabelValues(table).Add(float64(deleted))
	if err != nil {
		c.m.errors.WithLabelValues(table, "cleanup").Inc()
		return nil, deleted, false, c.visibleFiles(st), err
	}
	if !c.due(st, now, force) {
		return nil, deleted, false, c.visibleFiles(st), nil
	}
	start := time.Now()
	pr, step, err := c.compact(ctx, st)
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case step == stepSchema:
			c.m.errors.WithLabelValues(table, step).Inc()
			c.log.Warn("partition left uncompacted: its files disagree on a column's type, and compacting them would lose data; "+
				"rewrite or move the odd files by hand", "table", table, "partition", p.String(), "err", err)
		default:
			c.m.errors.WithLabelValues(table, step).Inc()
			c.log.Warn("compaction failed", "table", table, "partition", p.String(), "step", step, "err", err)
		}
		return nil, deleted, true, c.visibleFiles(st), err
	}
	pr.Duration = time.Since(start)
	c.m.duration.WithLabelValues(table).Observe(pr.Duration.Seconds())
	c.m.compacted.WithLabelValues(table).Inc()
	c.m.rowsRead.WithLabelValues(table).Add(float64(pr.RowsIn))
	c.m.rowsOut.WithLabelValues(table).Add(float64(pr.RowsOut))
	c.m.duplicates.WithLabelValues(table).Add(float64(pr.Duplicates))
	c.m.bytesRead.WithLabelValues(table).Add(float64(pr.BytesIn))
	c.m.bytesOut.WithLabelValues(table).Add(float64(pr.BytesOut))
	c.m.files.WithLabelValues(table, "before").Set(float64(pr.FilesIn))
	c.m.files.WithLabelValues(table, "after").Set(float64(pr.FilesOut))
	c.log.Info("partition compacted", "table", table, "partition", p.String(), "generation", pr.Generation,
		"files_in", pr.FilesIn, "files_out", pr.FilesOut, "rows_in", pr.RowsIn, "rows_out", pr.RowsOut,
		"duplicates", pr.Duplicates, "bytes_in", pr.BytesIn, "bytes_out", pr.BytesOut, "duration", pr.Duration)
	return pr, deleted, true, pr.FilesOut, nil
}

// stepSchema is the step of a compaction refused because the partition's files disagree on a
// column's type (rewrite.ErrSchema): nothing was written and the partition stays as it is.
const stepSchema = "schema"

// visibleFiles is the number of data files readers see in the partition as st describes it:
// those of the directory its location names, -1 when they cannot be listed.
func (c *Compactor) visibleFiles(st *partState) int {
	switch {
	case st.location == st.dir:
		return len(st.files)
	case st.cur != nil:
		return len(st.cur.Outputs)
	}
	files, err := dataFiles(c.lake.FS, st.location)
	if err != nil {
		return -1
	}
	return len(files)
}

// state reads the partition's current generation and files. It returns nil for a partition the
// compactor must leave alone for now (not registered in the metastore yet).
func (c *Compactor) state(ctx context.Context, table string, p lake.Partition) (*partState, error) {
	fsys := c.lake.FS
	st := &partState{
		table:   table,
		part:    p,
		dir:     c.lake.Layout.PartitionDir(table, p),
		genRoot: path.Join(c.lake.Layout.DatabaseDir(), "_compacted", table, p.Path()),
	}
	if ms := c.lake.Metastore; ms != nil {
		info, err := ms.GetPartition(ctx, c.lake.Layout.Database, table, p.Values())
		if errors.Is(err, lake.ErrNotFound) {
			return nil, nil // the lakewriter registers it; until then there is nothing to swap
		}
		if err != nil {
			return nil, err
		}
		st.location = locationPath(info.Location)
		switch {
		case st.location == st.dir:
			st.gen = 0
		case path.Dir(st.location) == st.genRoot && parseGen(path.Base(st.location)) > 0:
			st.gen = parseGen(path.Base(st.location))
			m, err := readManifest(fsys, st.location)
			if err != nil {
				// Without it the merged partition-directory files are unknown: all of them are
				// taken as late (deduplication makes that harmless) and none is deleted.
				c.log.Warn("manifest of the current generation unreadable", "table", table, "partition", p.String(), "err", err)
			}
			st.cur = m
		default:
			return nil, fmt.Errorf("the metastore points at %s, which is neither the partition directory nor a generation the compactor wrote; left alone", info.Location)
		}
	} else {
		st.location = st.dir
		m, err := readManifest(fsys, st.dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			st.cur, st.gen = m, m.Generation
		}
	}
	gens, err := fsys.ReadDir(st.genRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", st.genRoot, err)
	}
	for _, g := range gens {
		if n := parseGen(g.Name()); n > 0 && g.IsDir() {
			st.gens = append(st.gens, n)
		}
	}
	if c.lake.Metastore == nil && slices.Contains(st.gens, st.gen) {
		if err := c.rescue(st); err != nil {
			return nil, err
		}
	}
	files, err := dataFiles(fsys, st.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st.files = files
	return st, nil
}

// locationPath is the path of a metastore location URI (hdfs://nn:8020/p, file:/p, file:///p).
func locationPath(loc string) string {
	if u, err := url.Parse(loc); err == nil && u.Scheme != "" {
		return path.Clean(u.Path)
	}
	return path.Clean(loc)
}

func parseGen(name string) int {
	s, ok := strings.CutPrefix(name, "g")
	if !ok || len(s) != 6 {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// dataFiles lists the Parquet files readers see in dir, sorted by name.
func dataFiles(fsys lake.FS, dir string) ([]fs.FileInfo, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []fs.FileInfo
	for _, e := range entries {
		if !e.IsDir() && !lake.Hidden(e.Name()) && strings.HasSuffix(e.Name(), lake.DataFileExt) {
			out = append(out, e)
		}
	}
	return out, nil
}

// late are the partition-directory files the current generation does not hold.
func (c *Compactor) late(st *partState) []fs.FileInfo {
	if st.gen == 0 {
		return st.files
	}
	if st.cur == nil {
		return st.files
	}
	have := map[fileRef]bool{}
	if c.lake.Metastore != nil {
		for _, r := range st.cur.Consumed {
			have[r] = true
		}
	} else {
		for _, r := range st.cur.Outputs {
			have[fileRef{Path: path.Join(st.dir, r.Path), Size: r.Size}] = true
		}
	}
	var out []fs.FileInfo
	for _, f := range st.files {
		r := refOf(st.dir, f)
		if c.lake.Metastore == nil {
			r.ModTime = 0
		}
		if !have[r] {
			out = append(out, f)
		}
	}
	return out
}

// due reports whether the partition is sealed and worth compacting: never compacted and more
// than one file or a small one, or compacted and late files arrived since.
func (c *Compactor) due(st *partState, now time.Time, force bool) bool {
	if force {
		return len(c.late(st)) > 0
	}
	if now.Before(st.part.End().Add(c.cfg.Lateness)) {
		return false
	}
	if st.gen == 0 {
		return len(st.files) > 1 || len(st.files) == 1 && st.files[0].Size() < c.cfg.TargetFileBytes*3/4
	}
	return len(c.late(st)) > 0
}

// compact writes the next generation and swaps it in. step names where it failed.
func (c *Compactor) compact(ctx context.Context, st *partState) (*PartitionReport, string, error) {
	fsys := c.lake.FS
	next := st.gen + 1
	// Generations newer than the current one were never swapped in (a crash or an error before
	// the swap): nobody reads them.
	for _, g := range st.gens {
		if g > st.gen {
			if err := fsys.RemoveAll(st.genDir(g)); err != nil {
				return nil, "plan", fmt.Errorf("remove unfinished %s: %w", st.genDir(g), err)
			}
		}
	}
	late := c.late(st)
	var inputs []rewrite.Input
	var read []fileRef
	addInput := func(dir string, f fs.FileInfo) {
		name := path.Join(dir, f.Name())
		inputs = append(inputs, rewrite.Input{Name: name, Open: func() (rewrite.File, error) { return fsys.Open(name) }})
		read = append(read, refOf(dir, f))
	}
	var consumed []fileRef
	if st.gen > 0 {
		// The current generation first: where a late file repeats a row, the row already visible
		// stays.
		if c.lake.Metastore != nil {
			files, err := dataFiles(fsys, st.location)
			if err != nil {
				return nil, "plan", fmt.Errorf("list current generation: %w", err)
			}
			for _, f := range files {
				addInput(st.location, f)
			}
			if st.cur != nil {
				exists := map[fileRef]bool{}
				for _, f := range st.files {
					exists[refOf(st.dir, f)] = true
				}
				for _, r := range st.cur.Consumed {
					if exists[r] {
						consumed = append(consumed, r)
					}
				}
			}
		} else {
			isLate := map[string]bool{}
			for _, f := range late {
				isLate[f.Name()] = true
			}
			for _, f := range st.files {
				if !isLate[f.Name()] {
					addInput(st.dir, f)
				}
			}
		}
	}
	for _, f := range late {
		addInput(st.dir, f)
		consumed = append(consumed, refOf(st.dir, f))
	}
	if c.lake.Metastore == nil {
		consumed = nil
	}

	genDir := st.genDir(next)
	if err := fsys.MkdirAll(genDir); err != nil {
		return nil, "write", fmt.Errorf("create %s: %w", genDir, err)
	}
	var outputs []string
	create := func(i int) (io.WriteCloser, error) {
		if i > 0 {
			if err := c.hook("output"); err != nil {
				return nil, err
			}
		}
		name := path.Join(genDir, fmt.Sprintf("c%06d-%05d%s", next, i, lake.DataFileExt))
		outputs = append(outputs, name)
		return fsys.Create(name)
	}
	res, err := rewrite.Rewrite(ctx, inputs, create, rewrite.Options{
		SortKeys:        c.cfg.SortKeys,
		SortFallback:    c.cfg.SortFallback,
		IDColumn:        c.registryID(st.table),
		DedupFallback:   []string{"_req_guid", "_event_index"},
		TargetFileBytes: c.cfg.TargetFileBytes,
		RowGroupBytes:   c.cfg.RowGroupBytes,
		SortBufferBytes: c.cfg.SortBufferBytes,
		SpillDir:        c.cfg.SpillDir,
		ZstdLevel:       c.cfg.ZstdLevel,
		CreatedBy:       "clickstream-" + Version(),
		Metadata: map[string]string{
			"clickstream.writer":     Version(),
			"clickstream.table":      st.table,
			"clickstream.partition":  st.part.Path(),
			"clickstream.generation": strconv.Itoa(next),
		},
	})
	if err == nil {
		err = c.hook("written")
	}
	if err != nil {
		_ = fsys.RemoveAll(genDir)
		if errors.Is(err, rewrite.ErrSchema) {
			return nil, stepSchema, err
		}
		return nil, "rewrite", err
	}
	m := &manifest{
		Format: 1, Table: st.table, Partition: st.part.Path(), Generation: next, Compactor: Version(),
		Inputs: read, Consumed: consumed,
		RowsIn: res.RowsIn, RowsOut: res.RowsOut, Duplicates: res.Duplicates, BytesIn: res.BytesIn, BytesOut: res.BytesOut(),
		SortKeys: res.SortKeys, DedupKeys: res.DedupKeys, IDFrom: "registry",
	}
	if res.IDFromFiles {
		m.IDFrom = "files"
	}
	for i, name := range outputs {
		m.Outputs = append(m.Outputs, fileRef{Path: path.Base(name), Size: res.Files[i].Bytes})
	}
	m.Time = c.now().UTC()
	if err := m.write(fsys, genDir); err != nil {
		return nil, "manifest", err
	}
	if err := c.hook("manifest"); err != nil {
		return nil, "manifest", err
	}
	if err := c.swap(ctx, st, genDir, m); err != nil {
		return nil, "swap", err
	}
	if err := c.hook("swapped"); err != nil {
		return nil, "swap", err
	}
	location := genDir
	if c.lake.Metastore == nil {
		location = st.dir
		st.gen, st.cur, st.gens = next, m, append(st.gens, next)
		if err := c.rescue(st); err != nil {
			return nil, "rescue", err
		}
	}
	return &PartitionReport{
		Table: st.table, Partition: st.part, Generation: next, Location: fsys.Location(location),
		FilesIn: len(inputs), FilesOut: len(res.Files), RowsIn: res.RowsIn, RowsOut: res.RowsOut,
		Duplicates: res.Duplicates, BytesIn: res.BytesIn, BytesOut: res.BytesOut(),
	}, "", nil
}

// registryID is the id column the schema registry in force gives table's event type, "" when it
// declares none or does not know the type. The files' own metadata takes precedence (see
// rewrite.MetaIDField): that is how a compactor without the schema topic knows the id of a type
// pushed after it started. With deps.Schemas the registry is looked up at every compaction, so
// it follows pushed versions without a restart.
func (c *Compactor) registryID(table string) string {
	r := registry.Default()
	if c.schemas != nil {
		r = c.schemas.Current()
	}
	if r == nil {
		return ""
	}
	if et, ok := r.Lookup(table); ok && et.IDField != nil {
		return string(et.IDField.Name())
	}
	return ""
}

// partitionAlterer is the metastore call the compactor prefers: swap the location and record the
// compaction in the partition's parameters in one alter_partition. lake.Metastore has only
// AlterPartitionLocation; without this the parameters are in the generation's manifest only.
type partitionAlterer interface {
	AlterPartition(ctx context.Context, db, table string, values []string, location string, params map[string]string) error
}

// swap makes genDir what readers read.
func (c *Compactor) swap(ctx context.Context, st *partState, genDir string, m *manifest) error {
	ms := c.lake.Metastore
	if ms == nil {
		if err := exchangeDirs(st.dir, genDir); err != nil {
			return fmt.Errorf("exchange %s and %s: %w", st.dir, genDir, err)
		}
		return nil
	}
	loc := c.lake.FS.Location(genDir)
	if a, ok := ms.(partitionAlterer); ok {
		return a.AlterPartition(ctx, c.lake.Layout.Database, st.table, st.part.Values(), loc, partitionParams(m))
	}
	return ms.AlterPartitionLocation(ctx, c.lake.Layout.Database, st.table, st.part.Values(), loc)
}

// partitionParams are the partition parameters that record a compaction (and Hive's basic
// statistics of the new location, which Trino uses for planning).
func partitionParams(m *manifest) map[string]string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	return map[string]string{
		"clickstream.compactor.generation": strconv.Itoa(m.Generation),
		"clickstream.compactor.version":    m.Compactor,
		"clickstream.compactor.time":       m.Time.Format(time.RFC3339),
		"clickstream.compactor.files_in":   strconv.Itoa(len(m.Inputs)),
		"clickstream.compactor.files_out":  strconv.Itoa(len(m.Outputs)),
		"clickstream.compactor.rows_in":    i(m.RowsIn),
		"clickstream.compactor.rows_out":   i(m.RowsOut),
		"clickstream.compactor.duplicates": i(m.Duplicates),
		"clickstream.compactor.bytes_in":   i(m.BytesIn),
		"clickstream.compactor.bytes_out":  i(m.BytesOut),
		"numFiles":                         strconv.Itoa(len(m.Outputs)),
		"numRows":                          i(m.RowsOut),
		"totalSize":                        i(m.BytesOut),
	}
}

// rescue moves files that the lakewriter committed into the partition directory in the instant
// before a local swap back into it: they are in the retired directory but were not read.
func (c *Compactor) rescue(st *partState) error {
	if st.cur == nil {
		return nil
	}
	retired := st.genDir(st.gen)
	files, err := dataFiles(c.lake.FS, retired)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rescue: %w", err)
	}
	read := map[string]bool{}
	for _, r := range st.cur.Inputs {
		read[r.Path] = true
	}
	for _, f := range files {
		if read[path.Join(st.dir, f.Name())] {
			continue
		}
		err := c.lake.FS.Rename(path.Join(retired, f.Name()), path.Join(st.dir, f.Name()))
		if errors.Is(err, fs.ErrExist) {
			// The same name holds the same records (lake contract); this copy goes with the
			// retired directory.
			continue
		}
		if err != nil {
			return fmt.Errorf("rescue %s: %w", f.Name(), err)
		}
		c.log.Info("late file moved back after swap", "table", st.table, "partition", st.part.String(), "file", f.Name())
		if err := c.hook("rescued"); err != nil {
			return err
		}
	}
	return nil
}

// cleanup deletes what the current generation replaced once Grace has passed since its swap:
// older generation directories and (with a metastore) the partition-directory files it holds.
// Nothing readers are pointed at is deleted.
func (c *Compactor) cleanup(st *partState, now time.Time) (int, error) {
	if st.gen == 0 || st.cur == nil || now.Before(st.cur.Time.Add(c.cfg.Grace)) {
		return 0, nil
	}
	fsys := c.lake.FS
	deleted := 0
	for _, g := range st.gens {
		// With a metastore, the current generation is the location; without one, its path holds
		// the files it replaced (rescued above).
		if g < st.gen || g == st.gen && c.lake.Metastore == nil {
			if st.genDir(g) == st.location {
				continue
			}
			if err := fsys.RemoveAll(st.genDir(g)); err != nil {
				return deleted, fmt.Errorf("delete %s: %w", st.genDir(g), err)
			}
			deleted++
			if err := c.hook("deleted"); err != nil {
				return deleted, err
			}
		}
	}
	if c.lake.Metastore == nil || st.location == st.dir {
		return deleted, nil
	}
	merged := map[fileRef]bool{}
	for _, r := range st.cur.Consumed {
		merged[r] = true
	}
	var kept []fs.FileInfo
	for _, f := range st.files {
		if !merged[refOf(st.dir, f)] {
			kept = append(kept, f)
			continue
		}
		if err := fsys.Remove(path.Join(st.dir, f.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, fmt.Errorf("delete %s: %w", f.Name(), err)
		}
		deleted++
		if err := c.hook("deleted"); err != nil {
			return deleted, err
		}
	}
	st.files = kept
	return deleted, nil
}
