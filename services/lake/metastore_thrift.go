package lake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	hms "github.com/beltran/gohive/hive_metastore"
	"github.com/prometheus/client_golang/prometheus"
)

// MetastoreOptions configure the Thrift client.
type MetastoreOptions struct {
	// Timeout bounds connecting and each socket read or write (Thrift socket timeout).
	Timeout time.Duration
	// Retries is how many times a failed call is retried (with exponential backoff from
	// RetryBackoff, up to 10 s) before its error is returned. Errors that retrying cannot fix
	// (not found, already exists, invalid object) are returned at once.
	Retries int
	// RetryBackoff is the first backoff.
	RetryBackoff time.Duration
	// Namespace and Reg, when Reg is not nil, export call metrics as
	// <Namespace>_metastore_call_seconds{method} and <Namespace>_metastore_call_errors_total{method}.
	Namespace string
	Reg       prometheus.Registerer
}

// ThriftMetastore is a Hive Metastore client over Thrift (binary protocol, buffered transport,
// no SASL: hive.metastore.sasl.enabled=false, the default). It keeps one connection, reopened
// after a transport error; calls are serialised on it. It uses only calls that Hive 2.3 to 4.x
// all serve, and get_table_req rather than get_table, which Hive 4 removed.
type ThriftMetastore struct {
	addr string
	opts MetastoreOptions

	mu     sync.Mutex
	trans  thrift.TTransport
	client *hms.ThriftHiveMetastoreClient

	latency *prometheus.HistogramVec
	errs    *prometheus.CounterVec
}

var _ Metastore = (*ThriftMetastore)(nil)

// NewThriftMetastore returns a client of the metastore at uri (thrift://host:port). It connects
// lazily, on the first call.
func NewThriftMetastore(uri string, opts MetastoreOptions) (*ThriftMetastore, error) {
	addr, err := ParseMetastoreURI(uri)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	m := &ThriftMetastore{addr: addr, opts: opts}
	ns := opts.Namespace
	if ns == "" {
		ns = "clickstream_lake"
	}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    ns + "_metastore_call_seconds",
		Help:    "Latency of Hive Metastore calls, retries included, by method.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"method"})
	m.errs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ns + "_metastore_call_errors_total",
		Help: "Failed Hive Metastore call attempts, by method.",
	}, []string{"method"})
	if opts.Reg != nil {
		for _, c := range []prometheus.Collector{m.latency, m.errs} {
			if err := opts.Reg.Register(c); err != nil {
				return nil, fmt.Errorf("metastore metrics: %w", err)
			}
		}
	}
	return m, nil
}

// ParseMetastoreURI turns thrift://host:port (Hive's hive.metastore.uris form; the port defaults
// to 9083) into host:port.
func ParseMetastoreURI(uri string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(uri))
	if err != nil || u.Scheme != "thrift" || u.Hostname() == "" {
		return "", fmt.Errorf("metastore uri %q: want thrift://host:port", uri)
	}
	port := u.Port()
	if port == "" {
		port = "9083"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

func (m *ThriftMetastore) connect() error {
	if m.client != nil {
		return nil
	}
	cfg := &thrift.TConfiguration{ConnectTimeout: m.opts.Timeout, SocketTimeout: m.opts.Timeout}
	sock := thrift.NewTSocketConf(m.addr, cfg)
	trans := thrift.NewTBufferedTransport(sock, 8192)
	if err := trans.Open(); err != nil {
		return fmt.Errorf("metastore %s: connect: %w", m.addr, err)
	}
	p := thrift.NewTBinaryProtocolConf(trans, cfg)
	m.trans = trans
	m.client = hms.NewThriftHiveMetastoreClient(thrift.NewTStandardClient(p, p))
	return nil
}

func (m *ThriftMetastore) disconnect() {
	if m.trans != nil {
		_ = m.trans.Close()
	}
	m.trans, m.client = nil, nil
}

// permanent reports errors that a retry cannot fix.
func permanent(err error) bool {
	var (
		nf  *hms.NoSuchObjectException
		ae  *hms.AlreadyExistsException
		io  *hms.InvalidObjectException
		iop *hms.InvalidOperationException
		sc  *SchemaConflictError
	)
	return errors.As(err, &nf) || errors.As(err, &ae) || errors.As(err, &io) || errors.As(err, &iop) ||
		errors.As(err, &sc) || errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// brokenConnection reports errors after which the connection cannot be reused: anything but an
// exception the server sent in a well-formed reply.
func brokenConnection(err error) bool {
	var te thrift.TException
	if !errors.As(err, &te) {
		return true
	}
	switch te.TExceptionType() {
	case thrift.TExceptionTypeCompiled:
		return false // a declared exception (MetaException, NoSuchObjectException, ...)
	case thrift.TExceptionTypeApplication:
		return false // e.g. "Invalid method name"
	}
	return true
}

// call runs fn with the connection, retrying with backoff.
func (m *ThriftMetastore) call(ctx context.Context, method string, fn func(context.Context, *hms.ThriftHiveMetastoreClient) error) error {
	start := time.Now()
	defer func() { m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds()) }()
	backoff := m.opts.RetryBackoff
	for attempt := 0; ; attempt++ {
		err := m.attempt(ctx, fn)
		if err == nil {
			return nil
		}
		m.errs.WithLabelValues(method).Inc()
		err = fmt.Errorf("metastore %s: %w", method, err)
		if permanent(err) || attempt >= m.opts.Retries {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (m *ThriftMetastore) attempt(ctx context.Context, fn func(context.Context, *hms.ThriftHiveMetastoreClient) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := m.connect(); err != nil {
		return err
	}
	err := fn(ctx, m.client)
	if err != nil && brokenConnection(err) {
		m.disconnect()
	}
	return err
}

// Close implements Metastore.
func (m *ThriftMetastore) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.disconnect()
	return nil
}

// EnsureDatabase implements Metastore.
func (m *ThriftMetastore) EnsureDatabase(ctx context.Context, name, location string) error {
	err := m.call(ctx, "get_database", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		_, err := c.GetDatabase(ctx, name)
		return err
	})
	var nf *hms.NoSuchObjectException
	if err == nil || !errors.As(err, &nf) {
		return err
	}
	err = m.call(ctx, "create_database", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		return c.CreateDatabase(ctx, &hms.Database{
			Name:        name,
			Description: "clickstream lake: one table per event type, plus dead_letters",
			LocationUri: location,
			Parameters:  map[string]string{},
		})
	})
	var ae *hms.AlreadyExistsException
	if errors.As(err, &ae) {
		return nil // created concurrently
	}
	return err
}

// GetTable implements Metastore, with get_table_req.
func (m *ThriftMetastore) GetTable(ctx context.Context, db, name string) (Table, error) {
	t, err := m.getTableReq(ctx, db, name)
	if err != nil {
		return Table{}, err
	}
	out := Table{Database: t.DbName, Name: t.TableName, Parameters: t.Parameters, PartitionKeys: columnsFrom(t.PartitionKeys)}
	if t.Sd != nil {
		out.Location = t.Sd.Location
		out.Columns = columnsFrom(t.Sd.Cols)
	}
	if out.Parameters != nil {
		out.Comment = out.Parameters["comment"]
	}
	return out, nil
}

// getTableReq is the one get_table_req call (Hive 4 removed get_table); a missing table is
// ErrNotFound.
func (m *ThriftMetastore) getTableReq(ctx context.Context, db, name string) (*hms.Table, error) {
	var res *hms.GetTableResult_
	err := m.call(ctx, "get_table_req", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		req := hms.NewGetTableRequest()
		req.DbName, req.TblName = db, name
		var err error
		res, err = c.GetTableReq(ctx, req)
		return err
	})
	var nf *hms.NoSuchObjectException
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("table %s.%s: %w", db, name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if res == nil || res.Table == nil {
		return nil, fmt.Errorf("table %s.%s: %w", db, name, ErrNotFound)
	}
	return res.Table, nil
}

func columnsFrom(fs []*hms.FieldSchema) []Column {
	out := make([]Column, 0, len(fs))
	for _, f := range fs {
		out = append(out, Column{Name: f.Name, Type: f.Type, Comment: f.Comment})
	}
	return out
}

func fieldSchemas(cols []Column) []*hms.FieldSchema {
	out := make([]*hms.FieldSchema, 0, len(cols))
	for _, c := range cols {
		out = append(out, &hms.FieldSchema{Name: c.Name, Type: c.Type, Comment: c.Comment})
	}
	return out
}

func parquetSD(cols []Column, location string) *hms.StorageDescriptor {
	return &hms.StorageDescriptor{
		Cols:         fieldSchemas(cols),
		Location:     location,
		InputFormat:  ParquetInputFormat,
		OutputFormat: ParquetOutputFormat,
		NumBuckets:   -1,
		SerdeInfo: &hms.SerDeInfo{
			SerializationLib: ParquetSerDe,
			Parameters:       map[string]string{"serialization.format": "1"},
		},
		BucketCols: []string{},
		SortCols:   []*hms.Order{},
		Parameters: map[string]string{},
	}
}

// CreateTable implements Metastore: an EXTERNAL_TABLE with EXTERNAL=TRUE, which Hive 4's
// metastore leaves where it is (it would rewrite a non-ACID managed table into an external
// one and may move it).
func (m *ThriftMetastore) CreateTable(ctx context.Context, t Table) error {
	params := map[string]string{"EXTERNAL": "TRUE", "parquet.compression": "ZSTD"}
	for k, v := range t.Parameters {
		params[k] = v
	}
	if t.Comment != "" {
		params["comment"] = t.Comment
	}
	tbl := hms.NewTable()
	tbl.DbName, tbl.TableName = t.Database, t.Name
	tbl.Owner = "clickstream"
	tbl.CreateTime = int32(time.Now().Unix())
	tbl.Sd = parquetSD(t.Columns, t.Location)
	tbl.PartitionKeys = fieldSchemas(t.PartitionKeys)
	tbl.Parameters = params
	tbl.TableType = "EXTERNAL_TABLE"
	return m.call(ctx, "create_table", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		return c.CreateTable(ctx, tbl)
	})
}

// getTableRaw reads the Thrift table for alter calls, which send the whole table back.
func (m *ThriftMetastore) getTableRaw(ctx context.Context, db, name string) (*hms.Table, error) {
	t, err := m.getTableReq(ctx, db, name)
	if err != nil {
		return nil, err
	}
	if t.Sd == nil {
		return nil, fmt.Errorf("table %s.%s: no storage descriptor: %w", db, name, ErrNotFound)
	}
	return t, nil
}

// AlterColumns implements Metastore with alter_table_with_environment_context and the
// environment property CASCADE=true, which Hive 2.3 to 4 all serve (Hive 4's own client sends
// alter_table_req, a request-struct form of the same call that Hive 2.3 lacks; the metastore's
// alter handler serves both alike): it replaces the columns of the table and of each of its
// partitions in one transaction. It sends back the table as
// get_table_req returned it (catalog name, type, parameters and location unchanged), with the
// new columns only. With metastore.disallow.incompatible.col.type.changes (the default) the
// metastore compares the old and new types position by position, by their base names (struct
// = struct), so appended columns and struct fields pass.
func (m *ThriftMetastore) AlterColumns(ctx context.Context, db, name string, cols []Column) error {
	t, err := m.getTableRaw(ctx, db, name)
	if err != nil {
		return err
	}
	t.Sd.Cols = fieldSchemas(cols)
	env := &hms.EnvironmentContext{Properties: map[string]string{"CASCADE": "true"}}
	return m.call(ctx, "alter_table_with_environment_context", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		return c.AlterTableWithEnvironmentContext(ctx, db, name, t, env)
	})
}

// maxPartitionsPerCall keeps add_partitions_req requests small.
const maxPartitionsPerCall = 500

// AddPartitions implements Metastore with add_partitions_req(ifNotExists=true, needResult=false).
func (m *ThriftMetastore) AddPartitions(ctx context.Context, db, table string, parts []PartitionInfo) error {
	if len(parts) == 0 {
		return nil
	}
	t, err := m.getTableRaw(ctx, db, table)
	if err != nil {
		return err
	}
	now := int32(time.Now().Unix())
	for start := 0; start < len(parts); start += maxPartitionsPerCall {
		chunk := parts[start:min(start+maxPartitionsPerCall, len(parts))]
		req := hms.NewAddPartitionsRequest()
		req.DbName, req.TblName = db, table
		req.IfNotExists, req.NeedResult_ = true, false
		for _, p := range chunk {
			hp := hms.NewPartition()
			hp.DbName, hp.TableName = db, table
			hp.Values = p.Values
			hp.CreateTime = now
			sd := *t.Sd
			sd.Location = p.Location
			hp.Sd = &sd
			hp.Parameters = map[string]string{}
			for k, v := range p.Parameters {
				hp.Parameters[k] = v
			}
			req.Parts = append(req.Parts, hp)
		}
		err := m.call(ctx, "add_partitions_req", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
			_, err := c.AddPartitionsReq(ctx, req)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *ThriftMetastore) getPartitionRaw(ctx context.Context, db, table string, values []string) (*hms.Partition, error) {
	var p *hms.Partition
	err := m.call(ctx, "get_partition", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		var err error
		p, err = c.GetPartition(ctx, db, table, values)
		return err
	})
	var nf *hms.NoSuchObjectException
	if errors.As(err, &nf) || (err == nil && p == nil) {
		return nil, fmt.Errorf("partition %s.%s %v: %w", db, table, values, ErrNotFound)
	}
	return p, err
}

// GetPartition implements Metastore.
func (m *ThriftMetastore) GetPartition(ctx context.Context, db, table string, values []string) (PartitionInfo, error) {
	p, err := m.getPartitionRaw(ctx, db, table, values)
	if err != nil {
		return PartitionInfo{}, err
	}
	out := PartitionInfo{Values: p.Values, Parameters: p.Parameters}
	if p.Sd != nil {
		out.Location = p.Sd.Location
		out.Columns = columnsFrom(p.Sd.Cols)
	}
	return out, nil
}

// AlterPartitionLocation implements Metastore with alter_partition.
func (m *ThriftMetastore) AlterPartitionLocation(ctx context.Context, db, table string, values []string, location string) error {
	p, err := m.getPartitionRaw(ctx, db, table, values)
	if err != nil {
		return err
	}
	if p.Sd == nil {
		return fmt.Errorf("partition %s.%s %v has no storage descriptor", db, table, values)
	}
	p.Sd.Location = location
	return m.call(ctx, "alter_partition", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		return c.AlterPartition(ctx, db, table, p)
	})
}

// AlterPartition points an existing partition at location and merges params into its
// parameters, in one alter_partition call (the compactor records a compaction this way).
func (m *ThriftMetastore) AlterPartition(ctx context.Context, db, table string, values []string, location string, params map[string]string) error {
	p, err := m.getPartitionRaw(ctx, db, table, values)
	if err != nil {
		return err
	}
	if p.Sd == nil {
		return fmt.Errorf("partition %s.%s %v has no storage descriptor", db, table, values)
	}
	p.Sd.Location = location
	if p.Parameters == nil {
		p.Parameters = map[string]string{}
	}
	for k, v := range params {
		p.Parameters[k] = v
	}
	return m.call(ctx, "alter_partition", func(ctx context.Context, c *hms.ThriftHiveMetastoreClient) error {
		return c.AlterPartition(ctx, db, table, p)
	})
}
