package lake

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is where the lake is: the file system and warehouse directory, and the metastore that
// registers its tables. The lakewriter and the compactor embed it under LAKE_.
type Config struct {
	// URL is the warehouse directory: hdfs://namenode:8020/warehouse (HDFS, Hive's
	// metastore.warehouse.external.dir), file:///abs/path or a plain path (local disk; relative
	// paths are resolved against the working directory when the service starts).
	URL string `env:"URL" doc:"warehouse directory: hdfs://host:port/path, file:///abs/path or a local path"`
	// HDFSUser is the HDFS user (Hadoop's HADOOP_USER_NAME); empty: the OS user.
	HDFSUser string `env:"HDFS_USER" doc:"HDFS user the files are written as (HADOOP_USER_NAME); empty: the OS user"`
	// HDFSTimeout bounds connecting to the NameNode and DataNodes.
	HDFSTimeout time.Duration `env:"HDFS_TIMEOUT" doc:"timeout of HDFS connections"`
	// Database is the Hive database (its directory is <URL>/<Database>.db).
	Database string `env:"DATABASE" doc:"Hive database of the lake tables"`
	// MetastoreURI is the Hive Metastore (hive.metastore.uris), thrift://host:9083. Empty: no
	// metastore, the Hive-style layout on disk only.
	MetastoreURI string `env:"METASTORE_URI" doc:"Hive Metastore thrift://host:port (hive.metastore.uris); empty: no metastore"`
	// MetastoreTimeout bounds connecting and each read or write of a metastore call.
	MetastoreTimeout time.Duration `env:"METASTORE_TIMEOUT" doc:"timeout of a Hive Metastore connection and socket read/write"`
	// MetastoreRetries is how often a failed metastore call is retried, with backoff, before it
	// is reported (callers that must not give up, like partition registration, retry again).
	MetastoreRetries int `env:"METASTORE_RETRIES" doc:"retries of a failed Hive Metastore call"`
}

// DefaultConfig is a lake under ./lake with no metastore (the embedded `make run`).
func DefaultConfig() Config {
	return Config{
		URL:              "./lake",
		HDFSTimeout:      10 * time.Second,
		Database:         DefaultDatabase,
		MetastoreTimeout: 30 * time.Second,
		MetastoreRetries: 3,
	}
}

var hiveName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,127}$`)

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	if _, _, _, err := ParseURL(c.URL); err != nil {
		p.Add("url", err)
	}
	if !hiveName.MatchString(c.Database) {
		p.Addf("database", "must be a lower-case Hive name matching %s, got %q", hiveName, c.Database)
	}
	p.PositiveDuration("hdfs_timeout", c.HDFSTimeout)
	if c.MetastoreURI != "" {
		if _, err := ParseMetastoreURI(c.MetastoreURI); err != nil {
			p.Add("metastore_uri", err)
		}
	}
	p.PositiveDuration("metastore_timeout", c.MetastoreTimeout)
	if c.MetastoreRetries < 0 {
		p.Addf("metastore_retries", "must not be negative, got %d", c.MetastoreRetries)
	}
	return p.Err()
}

// Lake is an opened lake: its file system, layout and (optional) metastore.
type Lake struct {
	FS        FS
	Layout    Layout
	Metastore Metastore // nil without a metastore
}

// Open connects to the lake of c. namespace and reg name and receive the metastore metrics
// (e.g. "clickstream_lakewriter"); reg may be nil.
func Open(ctx context.Context, c Config, namespace string, reg prometheus.Registerer) (*Lake, error) {
	fsys, dir, err := OpenFS(c.URL, FSOptions{HDFSUser: c.HDFSUser, HDFSTimeout: c.HDFSTimeout})
	if err != nil {
		return nil, err
	}
	l := &Lake{FS: fsys, Layout: Layout{Root: dir, Database: c.Database}}
	if c.MetastoreURI != "" {
		ms, err := NewThriftMetastore(c.MetastoreURI, MetastoreOptions{
			Timeout: c.MetastoreTimeout, Retries: c.MetastoreRetries, Namespace: namespace, Reg: reg,
		})
		if err != nil {
			_ = fsys.Close()
			return nil, err
		}
		l.Metastore = ms
	}
	if err := fsys.MkdirAll(l.Layout.DatabaseDir()); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("lake %s: %w", c.URL, err)
	}
	return l, ctx.Err()
}

// Close closes the metastore connection and the file system.
func (l *Lake) Close() error {
	if l.Metastore != nil {
		_ = l.Metastore.Close()
	}
	return l.FS.Close()
}
