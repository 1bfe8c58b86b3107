package lakewriter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/clickstream/clickstream/services/lake"
)

// The commit protocol of one Kafka topic-partition (DESIGN.md, "Lake contract"), in the file
// system alone:
//
//  1. Records are written to Parquet files under the hidden staging directory of the
//     topic-partition, one file per table partition (dt/hour) they fall in.
//  2. A commit closes every open file of the topic-partition, then creates a commit marker
//     <commit log dir>/<start offset %020d>.commit listing each (staging file, final file) pair
//     and the next offset to consume. The marker is created exclusively (HDFS create without
//     overwrite, O_EXCL locally): two writers that both think they own the topic-partition and
//     commit from the same start offset cannot both succeed, so a zombie cannot add a second copy.
//  3. Each staging file is renamed to its final name in its partition directory; the name
//     carries topic, partition and the first and last offset of its records.
//  4. Older markers are removed, the Kafka offset is marked for commit (a hint for lag
//     monitoring only), and the partitions are queued for metastore registration.
//
// Recovery, on partition assignment: read the newest complete marker, finish its renames (a
// crash between 2 and 3 leaves some undone), remove everything in the staging directory, and
// consume from the marker's next offset. A marker is complete only with its "end" line; an
// incomplete one (a crash while writing it, before any rename) is removed. The file system is
// the truth; the group's committed offsets are never used to resume.
//
// Why a marker rather than listing committed files for the highest offset: a topic-partition's
// records interleave across hours, so one commit renames several files, and a crash between two
// renames would otherwise hide the gap; the compactor also moves committed files away; and
// listing every partition directory of a table on each assignment grows without bound.

const commitExt = ".commit"

type commitRecord struct {
	start, next int64
	files       []commitFile
}

type commitFile struct {
	temp, final string
}

func markerName(start int64) string { return fmt.Sprintf("%020d%s", start, commitExt) }

func (r commitRecord) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "lakewriter commit v1\nstart %d\nnext %d\n", r.start, r.next)
	for _, f := range r.files {
		fmt.Fprintf(&b, "file %s %s\n", f.temp, f.final)
	}
	b.WriteString("end\n")
	return b.Bytes()
}

var errIncompleteMarker = errors.New("incomplete commit marker")

func parseCommit(data []byte) (commitRecord, error) {
	var r commitRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		text := sc.Text()
		line++
		fields := strings.Fields(text)
		switch {
		case line == 1:
			if text != "lakewriter commit v1" {
				return r, fmt.Errorf("commit marker: unknown header %q", text)
			}
		case len(fields) == 2 && fields[0] == "start":
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("commit marker: %q: %w", text, err)
			}
			r.start = v
		case len(fields) == 2 && fields[0] == "next":
			v, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("commit marker: %q: %w", text, err)
			}
			r.next = v
		case len(fields) == 3 && fields[0] == "file":
			r.files = append(r.files, commitFile{temp: fields[1], final: fields[2]})
		case text == "end":
			return r, nil
		default:
			return r, fmt.Errorf("commit marker: unexpected line %q", text)
		}
	}
	return r, errIncompleteMarker
}

// errFenced means another writer committed from the same start offset first: this writer does
// not own the topic-partition's history any more and must recover before it writes again.
var errFenced = errors.New("another writer committed this offset range first")

// writeMarker creates the marker of r in dir, exclusively.
func writeMarker(fsys lake.FS, dir string, r commitRecord) error {
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	w, err := fsys.Create(path.Join(dir, markerName(r.start)))
	if errors.Is(err, fs.ErrExist) {
		return errFenced
	}
	if err != nil {
		return err
	}
	if _, err := w.Write(r.encode()); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// pruneMarkers removes the markers older than keep.
func pruneMarkers(fsys lake.FS, dir string, keep int64) error {
	infos, err := fsys.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, fi := range infos {
		if !strings.HasSuffix(fi.Name(), commitExt) || fi.Name() >= markerName(keep) {
			continue
		}
		if err := fsys.Remove(path.Join(dir, fi.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// recovery is what recovering a topic-partition found and did.
type recovery struct {
	next     int64 // the offset to consume from
	found    bool  // false: nothing was ever committed; consume from the start
	replayed int   // renames finished for a commit that crashed half-way
	orphans  int   // staging files removed
	missing  int   // files of the last commit found neither staged nor final (compacted away)
}

// recoverPartition brings a topic-partition's files to the state of its last complete commit.
func recoverPartition(fsys lake.FS, layout lake.Layout, topic string, partition int32) (recovery, error) {
	var rec recovery
	dir := layout.CommitLogDir(topic, partition)
	infos, err := fsys.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("list %s: %w", dir, err)
	}
	var markers []string
	for _, fi := range infos {
		if strings.HasSuffix(fi.Name(), commitExt) && !lake.Hidden(fi.Name()) {
			markers = append(markers, fi.Name())
		}
	}
	for i := len(markers) - 1; i >= 0 && !rec.found; i-- {
		name := path.Join(dir, markers[i])
		data, err := readAll(fsys, name)
		if err != nil {
			return rec, fmt.Errorf("read %s: %w", name, err)
		}
		r, err := parseCommit(data)
		if errors.Is(err, errIncompleteMarker) {
			// Written by a writer that crashed while writing it, before renaming anything.
			if err := fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return rec, fmt.Errorf("remove incomplete marker %s: %w", name, err)
			}
			continue
		}
		if err != nil {
			return rec, fmt.Errorf("%s: %w", name, err)
		}
		for _, f := range r.files {
			if _, err := fsys.Stat(f.final); err == nil {
				continue
			} else if !errors.Is(err, fs.ErrNotExist) {
				return rec, err
			}
			if _, err := fsys.Stat(f.temp); errors.Is(err, fs.ErrNotExist) {
				rec.missing++
				continue
			} else if err != nil {
				return rec, err
			}
			if err := fsys.MkdirAll(path.Dir(f.final)); err != nil {
				return rec, err
			}
			if err := fsys.Rename(f.temp, f.final); err != nil {
				return rec, fmt.Errorf("finish commit %s: %w", name, err)
			}
			rec.replayed++
		}
		rec.next, rec.found = r.next, true
		if err := pruneMarkers(fsys, dir, r.start); err != nil {
			return rec, err
		}
	}
	staging := layout.StagingDir(topic, partition)
	orphans, err := fsys.ReadDir(staging)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("list %s: %w", staging, err)
	}
	for _, fi := range orphans {
		if err := fsys.RemoveAll(path.Join(staging, fi.Name())); err != nil {
			return rec, fmt.Errorf("remove orphan: %w", err)
		}
		rec.orphans++
	}
	return rec, nil
}

func readAll(fsys lake.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
}
