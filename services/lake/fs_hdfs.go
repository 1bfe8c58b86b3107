package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sort"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

// HDFS is the lake on HDFS, through the pure-Go client (HDFS RPC protocol 9: Hadoop 2.2+ and 3.x).
type HDFS struct {
	c    *hdfs.Client
	addr string
}

var _ FS = (*HDFS)(nil)

// NewHDFS connects to the NameNode at addr (host:port) as opts.HDFSUser.
func NewHDFS(addr string, opts FSOptions) (*HDFS, error) {
	timeout := opts.HDFSTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	co := hdfs.ClientOptions{
		Addresses:        []string{addr},
		User:             opts.HDFSUser,
		NamenodeDialFunc: d.DialContext,
		DatanodeDialFunc: d.DialContext,
	}
	if co.User == "" {
		// The same default as the Hadoop CLI without HADOOP_USER_NAME.
		co.User = osUser()
	}
	c, err := hdfs.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("hdfs %s: %w", addr, err)
	}
	return &HDFS{c: c, addr: addr}, nil
}

func osUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// Create implements FS. The NameNode refuses an existing name (create flag CREATE without
// OVERWRITE), so two writers cannot both create the same file.
func (h *HDFS) Create(name string) (io.WriteCloser, error) {
	w, err := h.c.Create(name)
	if err != nil {
		return nil, err
	}
	return hdfsWriter{w}, nil
}

type hdfsWriter struct{ *hdfs.FileWriter }

// Close completes the file. The NameNode may answer that the last block is not yet reported by
// the DataNodes (ErrReplicating): the data is written, the file not yet complete. Like the Java
// client, Close asks again with backoff, so that a nil error means the file is complete.
func (w hdfsWriter) Close() error {
	err := w.FileWriter.Close()
	backoff := 50 * time.Millisecond
	for deadline := time.Now().Add(time.Minute); hdfs.IsErrReplicating(err) && time.Now().Before(deadline); {
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
		err = w.FileWriter.Close()
	}
	return err
}

type hdfsFile struct{ *hdfs.FileReader }

func (f hdfsFile) Size() int64 { return f.Stat().Size() }

// Open implements FS.
func (h *HDFS) Open(name string) (File, error) {
	r, err := h.c.Open(name)
	if err != nil {
		return nil, err
	}
	return hdfsFile{r}, nil
}

// Rename implements FS. The Go client's Rename overwrites an existing target (rename2 with
// OVERWRITE) and has no flag to stop it, so the target is checked first. The check and the
// rename are two NameNode calls: callers that can race on a name must fence elsewhere (the
// lakewriter's commit log does, by creating its marker with Create).
func (h *HDFS) Rename(oldname, newname string) error {
	if _, err := h.c.Stat(newname); err == nil {
		return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return h.c.Rename(oldname, newname)
}

// ReadDir implements FS.
func (h *HDFS) ReadDir(name string) ([]fs.FileInfo, error) {
	infos, err := h.c.ReadDir(name)
	if err != nil {
		return nil, err
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name() < infos[j].Name() })
	return infos, nil
}

// MkdirAll implements FS.
func (h *HDFS) MkdirAll(name string) error { return h.c.MkdirAll(name, 0o755) }

// Remove implements FS.
func (h *HDFS) Remove(name string) error { return h.c.Remove(name) }

// RemoveAll implements FS.
func (h *HDFS) RemoveAll(name string) error {
	err := h.c.RemoveAll(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Stat implements FS.
func (h *HDFS) Stat(name string) (fs.FileInfo, error) { return h.c.Stat(name) }

// Location implements FS.
func (h *HDFS) Location(name string) string { return "hdfs://" + h.addr + name }

// Close implements FS.
func (h *HDFS) Close() error { return h.c.Close() }

// Ping checks that the NameNode answers, within ctx.
func (h *HDFS) Ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { _, err := h.c.Stat("/"); done <- err }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
