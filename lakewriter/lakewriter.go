// Package lakewriter lands valid events and dead letters as Parquet files in Hive-style partitions and registers them in the Hive Metastore, exactly once.
//
// One Kafka consumer (group GroupID, read_committed) reads the valid topics and the DLQ. Each
// topic-partition it owns writes its records into one open Parquet file per table partition
// (dt/hour of the record timestamp) under a hidden staging directory, and commits them together
// on size, after RotateInterval (a timer, with or without traffic), when the hour they belong
// to has ended, on rebalance and on shutdown. commitlog.go describes the commit and recovery
// protocol that makes a replay write nothing twice.
//
// Table schemas follow the schema topic (schemastore): a new version is put in force by the
// consuming goroutine between two batches (schemas.go), so the data path never races with it.
package lakewriter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// Lakewriter is one running lakewriter.
type Lakewriter struct {
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	health *telemetry.Health
	m      *metrics
	clock  clock

	// Set by Run.
	lk      *lake.Lake
	cl      *kgo.Client
	rgs     *registrar
	schemas *schemastore.Live // run.Deps.Schemas, else a follower of SchemasTopic

	// pending is the newest schema version read from the schema topic and not yet in force;
	// the follower stores it, the consuming goroutine applies it (applyPending).
	pending atomic.Pointer[registry.Registry]
	// wake interrupts the poll in progress, so that a new version is applied without waiting
	// for records or a rotation deadline.
	wakeMu sync.Mutex
	wake   context.CancelFunc

	mu           sync.Mutex
	catalog      *catalog // the tables of the schema version in force
	tps          map[tp]*partitionWriter
	unknown      map[string]bool           // topics of event types the version in force does not have: paused
	unknownParts map[string]map[int32]bool // their partitions this instance owns
	seeked       map[tp]bool               // writers set up during this batch: its records of them are stale
	fatal        error                     // a commit failed after its marker: stop, recovery finishes it
	oldestNano   atomic.Int64              // oldest uncommitted record timestamp, for the gauge
	lagTopics    map[string]bool           // topics lag_records has a series for

	// testHook, when set, is called at named points (after-batch, before-marker, rename-N); an
	// errCrash from it stops the lakewriter there as kill -9 would (tests only).
	testHook func(point string) error
	crashed  bool
}

// LakeWriter is Lakewriter.
type LakeWriter = Lakewriter

type tp struct {
	topic     string
	partition int32
}

// New checks cfg and builds the lakewriter; nothing runs until Run.
func New(cfg Config, deps run.Deps) (*Lakewriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var reg prometheus.Registerer
	if deps.Reg != nil {
		reg = deps.Reg
	}
	s := &Lakewriter{
		cfg: cfg, log: log, reg: reg, health: deps.Health, schemas: deps.Schemas, clock: realClock{},
		tps: map[tp]*partitionWriter{}, unknown: map[string]bool{}, unknownParts: map[string]map[int32]bool{},
		lagTopics: map[string]bool{},
	}
	s.m = newMetrics(reg)
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "oldest_uncommitted_age_seconds",
			Help: "Wall-clock age of the oldest record (by its timestamp, the collector's receive time) not yet in a committed file; 0 when none."}, s.oldestAge))
	}
	if s.health != nil {
		s.health.Set("lakewriter", "starting")
	}
	return s, nil
}

func (s *Lakewriter) oldestAge() float64 {
	n := s.oldestNano.Load()
	if n == 0 {
		return 0
	}
	return max(0, s.clock.Now().Sub(time.Unix(0, n)).Seconds())
}

// Run works until ctx is cancelled, then commits what is open and shuts down.
func (s *Lakewriter) Run(ctx context.Context) error {
	lk, err := lake.Open(ctx, s.cfg.Lake, namespace, s.reg)
	if err != nil {
		return fmt.Errorf("open lake: %w", err)
	}
	defer lk.Close()
	s.lk = lk

	// The tables are those of the schema version in force; later versions are stored by the
	// follower and put in force by the consuming goroutine (applyPending).
	live, err := schemastore.Open(ctx, s.schemas, kafka.ClientOpts(s.cfg.Kafka, s.log, nil, ""), s.cfg.SchemasTopic, s.log, s.reg, namespace)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: nothing was consumed
		}
		return fmt.Errorf("schemas: %w", err)
	}
	s.schemas = live
	current := live.Subscribe(ctx, func(r *registry.Registry) {
		s.pending.Store(r)
		s.wakeMu.Lock()
		if s.wake != nil {
			s.wake()
		}
		s.wakeMu.Unlock()
	})
	cat, err := newCatalog(current, s.cfg.Topics, s.cfg.DLQTopic)
	if err != nil {
		return fmt.Errorf("tables of schema version %d: %w", current.Version(), err)
	}
	s.mu.Lock()
	s.catalog = cat
	s.mu.Unlock()
	s.m.schemaVersion.Set(float64(cat.version))
	s.rgs = newRegistrar(lk, cat.ordered, s.log, s.m, s.cfg.RegisterRetryMax)
	regCtx, stopReg := context.WithCancel(context.Background())
	regDone := make(chan struct{})
	go func() { defer close(regDone); s.rgs.run(regCtx) }()
	defer func() { stopReg(); <-regDone }()

	cl, err := kafka.NewClient(s.cfg.Kafka, s.log, s.reg, namespace,
		kgo.ConsumerGroup(s.cfg.GroupID),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(s.cfg.Topics, "^"+regexp.QuoteMeta(s.cfg.DLQTopic)+"$"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(5*time.Second),
		kgo.AdjustFetchOffsetsFn(s.adjustOffsets),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.MetadataMaxAge(10*time.Second), // regex consumption: new topics are found this fast
	)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cl = cl
	s.mu.Unlock()
	if s.health != nil {
		s.health.Set("lakewriter", "")
	}
	s.log.Info("started", "lake", s.cfg.Lake.URL, "metastore", s.cfg.Lake.MetastoreURI, "group", s.cfg.GroupID,
		"rotate_interval", s.cfg.RotateInterval, "schema_version", cat.version, "tables", len(cat.ordered))

	runErr := s.loop(ctx)
	s.mu.Lock()
	crashed := s.crashed
	s.mu.Unlock()
	if crashed {
		cl.Close()
		return runErr
	}

	// Shutdown: input is stopped (no more polls); commit what is open, then the offsets, then
	// leave the group, then give registration a last chance.
	s.mu.Lock()
	if runErr == nil {
		runErr = s.commitAll("shutdown")
	}
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout/2)
	defer cancel()
	if err := cl.CommitMarkedOffsets(sctx); err != nil {
		s.log.Warn("committing offsets at shutdown failed (they are a hint only)", "err", err)
	}
	cl.Close()
	if s.rgs.pendingCount() > 0 {
		stopReg()
		<-regDone
		if err := s.rgs.sync(sctx); err != nil {
			s.log.Warn("partitions still pending registration at shutdown; the next start registers them", "pending", s.rgs.pendingCount(), "err", err)
		}
	}
	s.log.Info("stopped")
	return runErr
}

func (s *Lakewriter) loop(ctx context.Context) error {
	for {
		s.mu.Lock()
		deadline := s.nextDeadline()
		s.mu.Unlock()
		pctx, cancel := context.WithCancel(ctx)
		stop := func() bool { return false }
		if !deadline.IsZero() {
			stop = s.clock.AfterFunc(deadline.Sub(s.clock.Now()), cancel)
		}
		s.wakeMu.Lock()
		s.wake = cancel
		s.wakeMu.Unlock()
		if s.pending.Load() != nil {
			cancel() // a version arrived since the last batch: apply it now
		}
		fetches := s.cl.PollRecords(pctx, s.cfg.MaxPollRecords)
		s.wakeMu.Lock()
		s.wake = nil
		s.wakeMu.Unlock()
		stop()
		cancel()
		if ctx.Err() != nil {
			s.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
			}
		})
		s.mu.Lock()
		s.seeked = nil
		err := s.fatal
		if err == nil {
			// Between PollRecords and AllowRebalance no rebalance runs: the safe point to
			// rotate, seek and resume for a new schema version.
			err = s.applyPending()
		}
		if err == nil {
			err = s.handle(ctx, fetches)
		}
		if err == nil {
			err = s.rotateDue()
		}
		if err == nil {
			err = s.hook("after-batch")
		}
		s.updateOldest()
		s.mu.Unlock()
		s.cl.AllowRebalance()
		if err != nil {
			return err
		}
	}
}

// handle writes the fetched records. Called with s.mu held; it releases it while it waits for
// a schema version.
func (s *Lakewriter) handle(ctx context.Context, fetches kgo.Fetches) error {
	if v := s.versionNeeded(fetches); v > s.catalog.version {
		applied, err := s.waitForSchemas(ctx, v)
		if err != nil || !applied {
			return err // stopping: the batch is not written, its records come again
		}
	}
	var err error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil {
			return
		}
		w := s.tps[tp{p.Topic, p.Partition}]
		if w != nil && p.Err == nil {
			w.end = p.HighWatermark
		}
		if len(p.Records) == 0 {
			return
		}
		if s.unknown[p.Topic] {
			s.cl.PauseFetchTopics(p.Topic)
			return
		}
		if w == nil || s.seeked[tp{p.Topic, p.Partition}] {
			return // not (or no longer) ours, or fetched before its writer was set up and seeked
		}
		for _, r := range p.Records {
			rewound, e := w.add(r)
			if e != nil {
				err = e
				return
			}
			if rewound {
				return // the rest of this batch comes again from the rewind point
			}
		}
		if w.oversize() {
			err = s.commit(w, "size")
		}
	})
	return err
}

// rotateDue commits every topic-partition whose interval or hour has run out.
func (s *Lakewriter) rotateDue() error {
	now := s.clock.Now()
	for _, w := range s.sortedWriters() {
		if reason := w.due(now, s.cfg.RotateInterval); reason != "" {
			if err := s.commit(w, reason); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Lakewriter) nextDeadline() time.Time {
	var d time.Time
	for _, w := range s.tps {
		if wd := w.deadline(s.cfg.RotateInterval); !wd.IsZero() && (d.IsZero() || wd.Before(d)) {
			d = wd
		}
	}
	return d
}

func (s *Lakewriter) updateOldest() {
	var oldest time.Time
	files := 0
	for _, w := range s.tps {
		files += len(w.files)
		if !w.oldest.IsZero() && (oldest.IsZero() || w.oldest.Before(oldest)) {
			oldest = w.oldest
		}
	}
	if oldest.IsZero() {
		s.oldestNano.Store(0)
	} else {
		s.oldestNano.Store(oldest.UnixNano())
	}
	s.m.openFiles.Set(float64(files))
	s.updateLag()
}

// updateLag sets lag_records: per topic, the records from the first offset not in a committed
// file up to the high watermark of the last fetch, summed over the partitions this instance
// owns; topics it owns no partition of any more read 0. Called with s.mu held.
func (s *Lakewriter) updateLag() {
	sums := map[string]int64{}
	for _, w := range s.tps {
		sums[w.topic] += max(0, w.end-w.start) // end is -1 until the first fetch: 0
	}
	for t := range s.lagTopics {
		if _, ok := sums[t]; !ok {
			s.m.lag.WithLabelValues(t).Set(0)
		}
	}
	for t, n := range sums {
		s.m.lag.WithLabelValues(t).Set(float64(n))
		s.lagTopics[t] = true
	}
}

func (s *Lakewriter) sortedWriters() []*partitionWriter {
	ws := make([]*partitionWriter, 0, len(s.tps))
	for _, w := range s.tps {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].topic != ws[j].topic {
			return ws[i].topic < ws[j].topic
		}
		return ws[i].partition < ws[j].partition
	})
	return ws
}

// commitAll commits every topic-partition (shutdown).
func (s *Lakewriter) commitAll(reason string) error {
	var errs []error
	for _, w := range s.sortedWriters() {
		errs = append(errs, s.commit(w, reason))
	}
	return errors.Join(errs...)
}

// errCrash, returned by a test hook, stops the lakewriter at once: nothing more is written,
// committed or cleaned up, as after kill -9.
var errCrash = errors.New("simulated crash")

func (s *Lakewriter) hook(point string) error {
	if s.testHook == nil {
		return nil
	}
	err := s.testHook(point)
	if errors.Is(err, errCrash) {
		s.crashed = true
	}
	return err
}

// commit makes a topic-partition's open files visible (see commitlog.go). A failure before the
// marker exists discards the files and consumes their records again; a failure after it is
// fatal for the process (recovery at the next start finishes the commit).
func (s *Lakewriter) commit(w *partitionWriter, reason string) error {
	if !w.pending {
		return nil
	}
	began := time.Now()
	fsys, layout := s.lk.FS, s.lk.Layout
	rec := commitRecord{start: w.start, next: w.next}
	var parts []lake.Partition
	var committed []*openFile
	for _, f := range w.sortedFiles() {
		df := lake.DataFile{Topic: w.topic, Partition: w.partition, FirstOffset: f.first, LastOffset: f.last}
		err := f.pf.close(df, w.schema)
		if cerr := f.w.Close(); err == nil {
			err = cerr
		}
		f.closed = true
		if err == nil {
			err = fsys.MkdirAll(layout.PartitionDir(w.schema.Table, f.part))
		}
		if err != nil {
			return s.failBeforeMarker(w, fmt.Errorf("close %s: %w", f.temp, err))
		}
		rec.files = append(rec.files, commitFile{temp: f.temp, final: path.Join(layout.PartitionDir(w.schema.Table, f.part), df.Name())})
		parts = append(parts, f.part)
		committed = append(committed, f)
	}
	if err := s.hook("before-marker"); err != nil {
		return err
	}
	err := writeMarker(fsys, layout.CommitLogDir(w.topic, w.partition), rec)
	if errors.Is(err, errFenced) {
		s.log.Warn("commit fenced: another writer committed this range; recovering", "topic", w.topic, "partition", w.partition, "start", rec.start)
		w.abort(fsys, s.m)
		return s.recoverAndSeek(w)
	}
	if err != nil {
		// The marker may exist although writing it failed (an HDFS close that timed out after
		// the NameNode completed the file): remove it before discarding the staging files, or
		// recovery would trust a marker whose files are gone.
		marker := path.Join(layout.CommitLogDir(w.topic, w.partition), markerName(rec.start))
		if rmErr := fsys.Remove(marker); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			s.fatal = fmt.Errorf("commit %s+%d at %d: write marker: %w; remove it: %w (the next start recovers)", w.topic, w.partition, rec.start, err, rmErr)
			return s.fatal
		}
		return s.failBeforeMarker(w, fmt.Errorf("write commit marker: %w", err))
	}
	for i, f := range rec.files {
		if err := s.hook(fmt.Sprintf("rename-%d", i)); err != nil {
			return err
		}
		if err := fsys.Rename(f.temp, f.final); err != nil {
			s.fatal = fmt.Errorf("commit %s+%d at %d: rename %s: %w (the next start finishes it)", w.topic, w.partition, rec.start, f.final, err)
			return s.fatal
		}
	}
	visible := s.clock.Now()
	s.m.commitTime.Observe(time.Since(began).Seconds())
	if err := pruneMarkers(fsys, layout.CommitLogDir(w.topic, w.partition), rec.start); err != nil {
		s.log.Warn("pruning old commit markers failed", "topic", w.topic, "partition", w.partition, "err", err)
	}
	rows := int64(0)
	for _, f := range committed {
		rows += f.pf.rows
		s.m.files.WithLabelValues(w.schema.Table).Inc()
		s.m.bytes.WithLabelValues(w.schema.Table).Add(float64(f.pf.out.n))
		f.observe(visible, s.m.latency)
	}
	s.m.committed.WithLabelValues(w.schema.Table).Add(float64(rows))
	s.m.commits.WithLabelValues(reason).Inc()
	s.rgs.add(w.schema.Table, parts)
	if w.lastEpoch >= -1 && s.cl != nil {
		s.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{w.topic: {w.partition: {Epoch: w.lastEpoch, Offset: w.next}}})
	}
	s.log.Debug("committed", "topic", w.topic, "partition", w.partition, "files", len(committed), "rows", rows, "next", w.next, "reason", reason)
	w.reset()
	return nil
}

// failBeforeMarker discards the open files and rewinds the topic-partition to its last commit,
// so the records are written again.
func (s *Lakewriter) failBeforeMarker(w *partitionWriter, err error) error {
	s.m.commitErrors.Inc()
	s.log.Error("commit failed; its records are consumed again", "topic", w.topic, "partition", w.partition, "err", err)
	w.abort(s.lk.FS, s.m)
	if s.cl != nil {
		s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{w.topic: {w.partition: {Epoch: -1, Offset: w.next}}})
	}
	return nil
}

// recoverAndSeek recovers a topic-partition from the lake and moves the consumer there.
func (s *Lakewriter) recoverAndSeek(w *partitionWriter) error {
	rec, err := s.recover(w.topic, w.partition)
	if err != nil {
		return err
	}
	w.start, w.next = rec.next, rec.next
	if s.cl != nil {
		s.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{w.topic: {w.partition: {Epoch: -1, Offset: rec.next}}})
	}
	return nil
}

func (s *Lakewriter) recover(topic string, partition int32) (recovery, error) {
	var rec recovery
	var err error
	backoff := 200 * time.Millisecond
	for attempt := 0; attempt < 5; attempt++ {
		rec, err = recoverPartition(s.lk.FS, s.lk.Layout, topic, partition)
		if err == nil {
			break
		}
		s.log.Warn("recovery failed, retrying", "topic", topic, "partition", partition, "err", err)
		time.Sleep(backoff)
		backoff *= 2
	}
	if err != nil {
		return rec, fmt.Errorf("recover %s partition %d: %w", topic, partition, err)
	}
	s.m.recoveries.Inc()
	s.m.replayed.Add(float64(rec.replayed))
	s.m.orphans.Add(float64(rec.orphans))
	if rec.replayed > 0 || rec.orphans > 0 || rec.missing > 0 {
		s.log.Info("recovered", "topic", topic, "partition", partition, "next", rec.next,
			"renames_finished", rec.replayed, "orphans_removed", rec.orphans, "files_gone", rec.missing)
	}
	return rec, nil
}

// adjustOffsets replaces the group's committed offsets by what the lake holds: each assigned
// partition resumes right after its last commit, or from the start if it has none.
func (s *Lakewriter) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, parts := range offsets {
		schema, ok := s.catalog.forTopic(topic)
		if !ok {
			if !s.unknown[topic] {
				s.unknown[topic] = true
				s.log.Warn("topic of an event type the schema version in force does not have; paused until a version adds it",
					"topic", topic, "schema_version", s.catalog.version)
			}
			if s.unknownParts[topic] == nil {
				s.unknownParts[topic] = map[int32]bool{}
			}
			// Start it where the lake says (as below), so that the partitions that return no
			// record before the type is added need no seek then; the others are paused by the
			// poll loop when their records arrive, and seeked back when the type is added.
			for p := range parts {
				rec, err := s.recover(topic, p)
				if err != nil {
					return nil, err
				}
				s.unknownParts[topic][p] = true
				parts[p] = startAt(rec)
			}
			continue
		}
		for p := range parts {
			rec, err := s.recover(topic, p)
			if err != nil {
				return nil, err
			}
			w := s.tps[tp{topic, p}]
			if w != nil {
				w.abort(s.lk.FS, s.m)
			}
			w = newPartitionWriter(s, topic, p, schema)
			w.start, w.next = rec.next, rec.next
			s.tps[tp{topic, p}] = w
			parts[p] = startAt(rec)
		}
	}
	return offsets, nil
}

// startAt is where consumption of a recovered topic-partition starts: right after its last
// commit, or from the start of the log if it has none.
func startAt(rec recovery) kgo.Offset {
	if rec.found {
		return kgo.NewOffset().At(rec.next).WithEpoch(-1)
	}
	return kgo.NewOffset().AtStart()
}

func (s *Lakewriter) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	n := 0
	for _, ps := range assigned {
		n += len(ps)
	}
	s.log.Info("partitions assigned", "count", n)
}

// revoked commits what is open for the partitions leaving, then their offsets.
func (s *Lakewriter) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	s.mu.Lock()
	if s.crashed {
		s.mu.Unlock()
		return
	}
	for topic, ps := range revoked {
		for _, p := range ps {
			delete(s.unknownParts[topic], p)
			w := s.tps[tp{topic, p}]
			if w == nil {
				continue
			}
			if s.fatal == nil {
				if err := s.commit(w, "revoke"); err != nil {
					s.log.Error("commit at revoke failed", "topic", topic, "partition", p, "err", err)
				}
			}
			w.abort(s.lk.FS, s.m)
			delete(s.tps, tp{topic, p})
		}
	}
	s.updateOldest()
	s.mu.Unlock()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Warn("committing offsets at revoke failed (they are a hint only)", "err", err)
	}
}

// lost discards what is open: another member may own the partitions already, and it recovers
// from the lake.
func (s *Lakewriter) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crashed {
		return
	}
	for topic, ps := range lost {
		for _, p := range ps {
			delete(s.unknownParts[topic], p)
			if w := s.tps[tp{topic, p}]; w != nil {
				w.abort(s.lk.FS, s.m)
				delete(s.tps, tp{topic, p})
			}
		}
	}
	s.updateOldest()
	s.log.Warn("partitions lost; open files discarded", "topics", len(lost))
}

// partitionWriter is the state of one owned topic-partition.
type partitionWriter struct {
	s         *Lakewriter
	topic     string
	partition int32
	schema    *Schema
	rows      *rowBuilder // turns records into Parquet rows (wire path, else reflective)

	start     int64 // first offset not in a committed file
	next      int64 // next offset to accept; records below it are committed already
	pending   bool  // records consumed since start (written or dropped)
	files     map[lake.Partition]*openFile
	openedAt  time.Time // wall time of the first record since start
	oldest    time.Time // oldest record timestamp since start
	lastEpoch int32
	end       int64 // high watermark of the last fetch; -1 before the first
}

type openFile struct {
	part        lake.Partition
	temp        string
	w           io.WriteCloser
	pf          *parquetFile
	first, last int64
	closed      bool
	times       []timeRun // record timestamps, run-length encoded, for the latency histogram
}

// timeRun is count records whose timestamps round to the same 100 ms.
type timeRun struct {
	at    int64 // unix milliseconds, rounded down to 100 ms
	count int
}

func (f *openFile) note(ts time.Time) {
	at := ts.UnixMilli() / 100 * 100
	if n := len(f.times); n > 0 && f.times[n-1].at == at {
		f.times[n-1].count++
		return
	}
	f.times = append(f.times, timeRun{at: at, count: 1})
}

func (f *openFile) observe(visible time.Time, h prometheus.Histogram) {
	for _, r := range f.times {
		lat := visible.Sub(time.UnixMilli(r.at)).Seconds()
		for range r.count {
			h.Observe(lat)
		}
	}
}

func newPartitionWriter(s *Lakewriter, topic string, partition int32, schema *Schema) *partitionWriter {
	return &partitionWriter{s: s, topic: topic, partition: partition, schema: schema, rows: schema.newRowBuilder(), files: map[lake.Partition]*openFile{}, lastEpoch: -1, end: -1}
}

// add writes one record. rewound reports that writing failed and the topic-partition was
// rewound to its last commit: the caller drops the rest of the batch.
func (w *partitionWriter) add(r *kgo.Record) (rewound bool, err error) {
	s := w.s
	if r.Offset < w.next {
		s.m.skipped.Inc()
		return false, nil
	}
	s.m.consumed.WithLabelValues(w.schema.Table).Inc()
	if !w.pending {
		w.openedAt = s.clock.Now()
	}
	w.pending = true
	w.next = r.Offset + 1
	w.lastEpoch = r.LeaderEpoch
	if w.oldest.IsZero() || r.Timestamp.Before(w.oldest) {
		w.oldest = r.Timestamp
	}
	row, err := w.rows.rowOf(r.Value, sysFromRecord(r))
	if err != nil {
		s.m.dropped.WithLabelValues("undecodable").Inc()
		s.log.Error("record does not decode as its table's message; dropped", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset, "message", w.schema.Message.FullName(), "err", err)
		return false, nil
	}
	part := lake.PartitionOf(r.Timestamp)
	f := w.files[part]
	if f == nil {
		var err error
		if f, err = w.open(part, r.Offset); err != nil {
			return true, w.s.failBeforeMarker(w, err)
		}
	}
	if err := f.pf.writeRow(row); err != nil {
		return true, w.s.failBeforeMarker(w, err)
	}
	f.last = r.Offset
	f.note(r.Timestamp)
	s.m.written.WithLabelValues(w.schema.Table).Inc()
	return false, nil
}

func (w *partitionWriter) open(part lake.Partition, first int64) (*openFile, error) {
	fsys, layout := w.s.lk.FS, w.s.lk.Layout
	dir := layout.StagingDir(w.topic, w.partition)
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("staging dir: %w", err)
	}
	temp := path.Join(dir, fmt.Sprintf("%s+%s+%s+%020d.parquet", w.schema.Table, part.Date, part.Hour, first))
	out, err := fsys.Create(temp)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", temp, err)
	}
	f := &openFile{part: part, temp: temp, w: out, first: first, last: first,
		pf: newParquetFile(out, w.schema, w.s.cfg.PageSize, min(w.s.cfg.RowGroupSize, w.s.cfg.FileSize))}
	w.files[part] = f
	return f, nil
}

func sysFromRecord(r *kgo.Record) sysValues {
	sv := sysValues{receivedAt: r.Timestamp, partition: r.Partition, offset: r.Offset}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case kafka.HeaderReqGUID:
			sv.reqGUID = v
		case kafka.HeaderConnGroup:
			sv.connGroup = v
		case kafka.HeaderEventIndex:
			if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				sv.eventIndex, sv.hasIndex = int32(n), true
			}
		case kafka.HeaderReceivedAt:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				sv.receivedAt = t
			}
		case kafka.HeaderReplayedFromDLQ:
			sv.replayed = v == "true"
		}
	}
	return sv
}

func (w *partitionWriter) oversize() bool {
	for _, f := range w.files {
		if f.pf.size() >= w.s.cfg.FileSize {
			return true
		}
	}
	return false
}

// deadline is when the open files must be committed without more records: RotateInterval after
// the first record, or the end of an hour that ended while its file was open, whichever is first.
func (w *partitionWriter) deadline(interval time.Duration) time.Time {
	if !w.pending {
		return time.Time{}
	}
	d := w.openedAt.Add(interval)
	for p := range w.files {
		if end := p.End(); end.After(w.openedAt) && end.Before(d) {
			d = end
		}
	}
	return d
}

func (w *partitionWriter) due(now time.Time, interval time.Duration) string {
	if !w.pending {
		return ""
	}
	if !now.Before(w.openedAt.Add(interval)) {
		return "interval"
	}
	if d := w.deadline(interval); !now.Before(d) {
		return "hour"
	}
	return ""
}

func (w *partitionWriter) sortedFiles() []*openFile {
	fs := make([]*openFile, 0, len(w.files))
	for _, f := range w.files {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].part.Path() < fs[j].part.Path() })
	return fs
}

// reset starts the next uncommitted range after a commit.
func (w *partitionWriter) reset() {
	w.start = w.next
	w.pending = false
	w.files = map[lake.Partition]*openFile{}
	w.openedAt, w.oldest = time.Time{}, time.Time{}
}

// abort discards the open files; the next records consumed start again at start.
func (w *partitionWriter) abort(fsys lake.FS, m *metrics) {
	for _, f := range w.files {
		if !f.closed {
			_ = f.w.Close()
		}
		_ = fsys.Remove(f.temp)
		m.aborted.WithLabelValues(w.schema.Table).Add(float64(f.pf.rows))
	}
	w.next = w.start
	w.reset()
}

// clock is the wall clock, replaceable in tests.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
