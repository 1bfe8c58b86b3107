// Package lake is what the lakewriter and the compactor share about the lake: the file systems
// it lives on (a local directory or HDFS), its layout (database, table and partition directories,
// committed and temporary file names) and the Hive Metastore that makes tables queryable.
package lake

import (
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// FS is the little of a file system the lake needs. Names are absolute, slash-separated paths
// inside the file system ("/warehouse/clickstream.db/page_view"); Location turns one into the URI
// the metastore and query engines use. Errors wrap fs.ErrExist and fs.ErrNotExist where they
// apply, so callers test them with errors.Is.
//
// There are two implementations, a local directory (tests, `make run`) and HDFS.
type FS interface {
	// Create creates a new file for writing and fails with fs.ErrExist if name exists. The file's
	// directory must exist. The data is durable once Close returns nil.
	Create(name string) (io.WriteCloser, error)
	// Open opens a file for random-access reading (Parquet readers need io.ReaderAt and the size).
	Open(name string) (File, error)
	// Rename moves a file and fails with fs.ErrExist if newname exists.
	Rename(oldname, newname string) error
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]fs.FileInfo, error)
	// MkdirAll creates a directory and its parents; existing ones are fine.
	MkdirAll(name string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes a file or a directory tree; a missing name is fine.
	RemoveAll(name string) error
	// Stat describes a file or directory.
	Stat(name string) (fs.FileInfo, error)
	// Location is the URI of name for the metastore (hdfs://host:port/path or file:/path).
	Location(name string) string
	// Close releases the connection, if any.
	Close() error
}

// File is an open file for reading.
type File interface {
	io.ReaderAt
	io.Reader
	io.Closer
	// Size is the file's length in bytes.
	Size() int64
}

// FSOptions are the settings of the file system behind a lake URL.
type FSOptions struct {
	// HDFSUser is the user HDFS requests are made as (Hadoop's HADOOP_USER_NAME, which the Go
	// client does not read by itself). Empty: the OS user.
	HDFSUser string
	// HDFSTimeout bounds connecting to the NameNode and DataNodes.
	HDFSTimeout time.Duration
}

// OpenFS connects to the file system of a lake URL and returns it with the URL's path in it:
//
//	hdfs://namenode:8020/warehouse  → HDFS, "/warehouse"
//	file:///var/lib/lake            → local, "/var/lib/lake"
//	./lake or /var/lib/lake         → local; a relative path is made absolute from the working directory
func OpenFS(rawURL string, opts FSOptions) (FS, string, error) {
	scheme, host, dir, err := ParseURL(rawURL)
	if err != nil {
		return nil, "", err
	}
	switch scheme {
	case "hdfs":
		h, err := NewHDFS(host, opts)
		if err != nil {
			return nil, "", err
		}
		return h, dir, nil
	default:
		return Local{}, dir, nil
	}
}

// ParseURL splits a lake URL into its scheme ("file" or "hdfs"), host:port (HDFS) and absolute
// directory. Relative local paths are resolved against the working directory.
func ParseURL(rawURL string) (scheme, host, dir string, err error) {
	raw := strings.TrimSpace(rawURL)
	if raw == "" {
		return "", "", "", fmt.Errorf("lake url: empty")
	}
	if !strings.Contains(raw, "://") {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return "", "", "", fmt.Errorf("lake url %q: %w", raw, err)
		}
		return "file", "", filepath.ToSlash(abs), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", "", fmt.Errorf("lake url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			// file://./lake is a common way to write a relative path.
			if u.Host == "." || u.Host == ".." {
				abs, err := filepath.Abs(u.Host + u.Path)
				if err != nil {
					return "", "", "", fmt.Errorf("lake url %q: %w", raw, err)
				}
				return "file", "", filepath.ToSlash(abs), nil
			}
			return "", "", "", fmt.Errorf("lake url %q: a file URL has no host (file:///abs/path)", raw)
		}
		if !path.IsAbs(u.Path) {
			return "", "", "", fmt.Errorf("lake url %q: path must be absolute", raw)
		}
		return "file", "", path.Clean(u.Path), nil
	case "hdfs":
		if u.Host == "" {
			return "", "", "", fmt.Errorf("lake url %q: hdfs needs host:port of the NameNode", raw)
		}
		host := u.Host
		if u.Port() == "" {
			host += ":8020"
		}
		p := u.Path
		if p == "" {
			p = "/"
		}
		return "hdfs", host, path.Clean(p), nil
	}
	return "", "", "", fmt.Errorf("lake url %q: scheme must be file or hdfs", raw)
}
