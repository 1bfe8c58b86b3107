package lake

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Local is the lake on a local directory. Names are absolute OS paths in slash form.
type Local struct{}

var _ FS = Local{}

type localWriter struct{ *os.File }

// Close syncs the file before closing it, so a committed file survives a machine crash.
func (w localWriter) Close() error {
	if err := w.File.Sync(); err != nil {
		_ = w.File.Close()
		return err
	}
	return w.File.Close()
}

// Create implements FS.
func (Local) Create(name string) (io.WriteCloser, error) {
	f, err := os.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return localWriter{f}, nil
}

type localFile struct {
	*os.File
	size int64
}

func (f localFile) Size() int64 { return f.size }

// Open implements FS.
func (Local) Open(name string) (File, error) {
	f, err := os.Open(filepath.FromSlash(name))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return localFile{File: f, size: st.Size()}, nil
}

// Rename implements FS. A hard link fails atomically when the target exists (rename(2) would
// replace it); the old name is removed after the link.
func (Local) Rename(oldname, newname string) error {
	o, n := filepath.FromSlash(oldname), filepath.FromSlash(newname)
	if err := os.Link(o, n); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) {
			return &os.PathError{Op: "rename", Path: newname, Err: le.Err}
		}
		return err
	}
	if err := os.Remove(o); err != nil {
		return fmt.Errorf("rename %s: remove old name: %w", oldname, err)
	}
	return nil
}

// ReadDir implements FS.
func (Local) ReadDir(name string) ([]fs.FileInfo, error) {
	entries, err := os.ReadDir(filepath.FromSlash(name))
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(entries))
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed while listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// MkdirAll implements FS.
func (Local) MkdirAll(name string) error { return os.MkdirAll(filepath.FromSlash(name), 0o755) }

// Remove implements FS.
func (Local) Remove(name string) error { return os.Remove(filepath.FromSlash(name)) }

// RemoveAll implements FS.
func (Local) RemoveAll(name string) error { return os.RemoveAll(filepath.FromSlash(name)) }

// Stat implements FS.
func (Local) Stat(name string) (fs.FileInfo, error) { return os.Stat(filepath.FromSlash(name)) }

// Location implements FS: file:/abs/path, the form Hive and Hadoop write.
func (Local) Location(name string) string { return "file:" + filepath.ToSlash(name) }

// Close implements FS.
func (Local) Close() error { return nil }
