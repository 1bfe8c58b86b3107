package compactor

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
)

// manifestName is the manifest of a generation, in the generation's directory. The name is hidden
// from Hive, Trino and Spark, so it may sit in a partition location next to the data files.
const manifestName = "_compaction.json"

// manifest describes one generation of a compacted partition: what was read, what was written
// and when it was swapped in. It is written into the generation's directory just before the swap
// and moves with the files (the metastore location points at its directory; in local mode the
// directory becomes the partition directory), so the current generation always describes
// itself.
type manifest struct {
	Format     int       `json:"format"` // 1
	Table      string    `json:"table"`
	Partition  string    `json:"partition"`
	Generation int       `json:"generation"`
	Time       time.Time `json:"time"` // just before the swap; replaced files are deleted Grace after it
	Compactor  string    `json:"compactor"`
	Inputs     []fileRef `json:"inputs"`  // every file read, by path
	Outputs    []fileRef `json:"outputs"` // the files written, by name in the generation's directory
	// Consumed are the files of the partition directory whose rows this generation holds (with a
	// metastore the lakewriter keeps committing late files there; the others are late).
	Consumed   []fileRef `json:"consumed,omitempty"`
	RowsIn     int64     `json:"rows_in"`
	RowsOut    int64     `json:"rows_out"`
	Duplicates int64     `json:"duplicates"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	SortKeys   []string  `json:"sort_keys"`
	DedupKeys  []string  `json:"dedup_keys"`
	// IDFrom says where the id column among DedupKeys came from: "files" (their
	// clickstream.id_field metadata) or "registry" (the schema registry in force).
	IDFrom string `json:"id_from,omitempty"`
}

// fileRef identifies a file by path (or name), size and modification time, so that a file
// committed again under a name seen before is not taken for the old one.
type fileRef struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ms"`
}

func refOf(dir string, fi fs.FileInfo) fileRef {
	return fileRef{Path: path.Join(dir, fi.Name()), Size: fi.Size(), ModTime: fi.ModTime().UnixMilli()}
}

func (m *manifest) write(fsys lake.FS, dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	name := path.Join(dir, manifestName)
	w, err := fsys.Create(name)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		_ = w.Close()
		return fmt.Errorf("write manifest %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write manifest %s: %w", name, err)
	}
	return nil
}

// readManifest reads the manifest in dir; it wraps fs.ErrNotExist when there is none.
func readManifest(fsys lake.FS, dir string) (*manifest, error) {
	name := path.Join(dir, manifestName)
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", name, err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", name, err)
	}
	if m.Format != 1 {
		return nil, fmt.Errorf("read manifest %s: unknown format %d", name, m.Format)
	}
	return &m, nil
}

// Version names this build of the compactor, as recorded in manifests, file metadata and
// partition parameters.
func Version() string { return version }

// version is read from the build information once; it cannot change while running.
var version = "compactor " + run.ModuleVersion("github.com/clickstream/clickstream/compactor")
