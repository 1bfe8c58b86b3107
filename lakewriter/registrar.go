package lakewriter

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/clickstream/clickstream/services/lake"
)

// registrar makes the metastore list every table and every partition that has a committed file.
// It works in the background: when the metastore is down the lakewriter goes on writing, and
// registration is retried with backoff, never skipped (partitions_pending_registration counts
// what waits).
type registrar struct {
	ms       lake.Metastore
	lk       *lake.Lake
	log      *slog.Logger
	m        *metrics
	maxRetry time.Duration

	mu        sync.Mutex
	schemas   map[string]*Schema
	dbReady   bool
	tables    map[string]bool                        // table → exists with the current columns
	reconcile []string                               // tables whose partition directories are to be queued (all at start)
	pending   map[string]map[lake.Partition]struct{} // table → partitions to add
	done      map[string]map[lake.Partition]struct{} // table → registered by this process
	kick      chan struct{}
}

func newRegistrar(lk *lake.Lake, schemas []*Schema, log *slog.Logger, m *metrics, maxRetry time.Duration) *registrar {
	r := &registrar{
		ms: lk.Metastore, lk: lk, log: log, m: m, maxRetry: maxRetry,
		schemas: map[string]*Schema{}, tables: map[string]bool{},
		pending: map[string]map[lake.Partition]struct{}{}, done: map[string]map[lake.Partition]struct{}{},
		kick: make(chan struct{}, 1),
	}
	for _, s := range schemas {
		r.schemas[s.Table] = s
		r.reconcile = append(r.reconcile, s.Table)
	}
	return r
}

// update takes the schemas of tables a new schema version adds or changes: they are created or
// altered (EnsureTable) before more partitions of them are registered, and a new table's
// existing partition directories (an earlier process may have written it) are queued.
func (r *registrar) update(schemas []*Schema) {
	if r == nil || r.ms == nil || len(schemas) == 0 {
		return
	}
	r.mu.Lock()
	for _, s := range schemas {
		if _, had := r.schemas[s.Table]; !had {
			r.reconcile = append(r.reconcile, s.Table)
		}
		r.schemas[s.Table] = s
		r.tables[s.Table] = false
	}
	r.updateGauge()
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// add queues partitions whose first file was just committed.
func (r *registrar) add(table string, parts []lake.Partition) {
	if r == nil || r.ms == nil {
		return
	}
	r.mu.Lock()
	added := false
	for _, p := range parts {
		if _, ok := r.done[table][p]; ok {
			continue
		}
		if r.pending[table] == nil {
			r.pending[table] = map[lake.Partition]struct{}{}
		}
		if _, ok := r.pending[table][p]; !ok {
			r.pending[table][p] = struct{}{}
			added = true
		}
	}
	r.updateGauge()
	r.mu.Unlock()
	if added {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func (r *registrar) updateGauge() {
	n := 0
	for _, ps := range r.pending {
		n += len(ps)
	}
	for t := range r.schemas {
		if !r.tables[t] {
			n++
		}
	}
	r.m.pending.Set(float64(n))
}

// run registers until ctx is done.
func (r *registrar) run(ctx context.Context) {
	if r == nil || r.ms == nil {
		return
	}
	backoff := time.Second
	failing := false
	for {
		err := r.sync(ctx)
		wait := time.Duration(0)
		switch {
		case err == nil:
			if failing {
				r.log.Info("metastore registration recovered")
			}
			failing, backoff = false, time.Second
		case ctx.Err() != nil:
			return
		default:
			r.m.registerFails.Inc()
			if !failing {
				r.log.Warn("metastore registration failed; writing goes on, retrying", "err", err)
			}
			failing = true
			wait = backoff
			backoff = min(2*backoff, r.maxRetry)
		}
		var timer <-chan time.Time
		if wait > 0 {
			timer = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			if timer != nil { // a failing metastore is not hammered by every commit
				select {
				case <-ctx.Done():
					return
				case <-timer:
				}
			}
		case <-timer:
		}
	}
}

// sync makes one round: database, tables, then the pending partitions.
func (r *registrar) sync(ctx context.Context) error {
	r.mu.Lock()
	queued := r.reconcile
	r.reconcile = nil
	r.mu.Unlock()
	if len(queued) > 0 {
		if err := r.reconcileTables(queued); err != nil {
			r.log.Warn("listing partitions to reconcile with the metastore failed", "err", err)
		}
	}
	r.mu.Lock()
	dbReady := r.dbReady
	var tables []*Schema
	for name, s := range r.schemas {
		if !r.tables[name] {
			tables = append(tables, s)
		}
	}
	r.mu.Unlock()
	sort.Slice(tables, func(i, j int) bool { return tables[i].Table < tables[j].Table })
	layout := r.lk.Layout
	if !dbReady {
		if err := r.ms.EnsureDatabase(ctx, layout.Database, r.lk.FS.Location(layout.DatabaseDir())); err != nil {
			return err
		}
		r.mu.Lock()
		r.dbReady = true
		r.mu.Unlock()
	}
	var errs []error
	for _, s := range tables {
		changed, err := lake.EnsureTable(ctx, r.ms, lake.Table{
			Database: layout.Database, Name: s.Table, Location: r.lk.FS.Location(layout.TableDir(s.Table)),
			Columns: s.Columns, PartitionKeys: lake.PartitionKeys,
			Comment:    "clickstream " + string(s.Message.FullName()) + ", landed by the lakewriter",
			Parameters: map[string]string{"clickstream.message": string(s.Message.FullName())},
		})
		if err != nil {
			var conflict *lake.SchemaConflictError
			if errors.As(err, &conflict) {
				r.log.Error("table schema cannot evolve; files are still written, the table is not updated", "table", s.Table, "err", err)
			}
			errs = append(errs, err)
			continue
		}
		if changed {
			r.log.Info("table created or evolved in the metastore", "table", s.Table)
		}
		r.mu.Lock()
		if r.schemas[s.Table] == s { // not changed again by a newer version meanwhile
			r.tables[s.Table] = true
		}
		r.updateGauge()
		r.mu.Unlock()
	}
	r.mu.Lock()
	work := map[string][]lake.Partition{}
	for t, ps := range r.pending {
		if !r.tables[t] {
			continue
		}
		for p := range ps {
			work[t] = append(work[t], p)
		}
	}
	r.mu.Unlock()
	for t, ps := range work {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Path() < ps[j].Path() })
		infos := make([]lake.PartitionInfo, len(ps))
		for i, p := range ps {
			infos[i] = lake.PartitionInfo{Values: p.Values(), Location: r.lk.FS.Location(layout.PartitionDir(t, p))}
		}
		if err := r.ms.AddPartitions(ctx, layout.Database, t, infos); err != nil {
			errs = append(errs, err)
			continue
		}
		r.mu.Lock()
		if r.done[t] == nil {
			r.done[t] = map[lake.Partition]struct{}{}
		}
		for _, p := range ps {
			delete(r.pending[t], p)
			r.done[t][p] = struct{}{}
		}
		r.updateGauge()
		r.mu.Unlock()
		r.m.registered.Add(float64(len(ps)))
	}
	return errors.Join(errs...)
}

// reconcileTables queues every partition directory of the tables, so that partitions whose
// registration was still pending when a previous process stopped get registered (adding is
// if-not-exists, so registered ones are unchanged, compacted ones keep their location).
func (r *registrar) reconcileTables(tables []string) error {
	var errs []error
	for _, t := range tables {
		dir := r.lk.Layout.TableDir(t)
		dts, err := r.lk.FS.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var parts []lake.Partition
		for _, dt := range dts {
			if !dt.IsDir() || lake.Hidden(dt.Name()) {
				continue
			}
			hours, err := r.lk.FS.ReadDir(path.Join(dir, dt.Name()))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, h := range hours {
				if p, err := lake.ParsePartition(dt.Name() + "/" + h.Name()); err == nil && h.IsDir() {
					parts = append(parts, p)
				}
			}
		}
		r.add(t, parts)
	}
	return errors.Join(errs...)
}

// pendingCount is the number of partitions and tables waiting.
func (r *registrar) pendingCount() int {
	if r == nil || r.ms == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ps := range r.pending {
		n += len(ps)
	}
	for t := range r.schemas {
		if !r.tables[t] {
			n++
		}
	}
	return n
}
