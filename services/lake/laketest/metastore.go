// Package laketest runs an in-process fake Hive Metastore that speaks the real Thrift protocol
// on a random local port, so the lake's metastore client and its users are tested over the wire.
// It implements only the calls the lake makes; the real Hive Metastore is exercised by e2e.
package laketest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	hms "github.com/beltran/gohive/hive_metastore"
)

// Metastore is a fake Hive Metastore. Its methods inspect and steer it from tests.
type Metastore struct {
	hms.ThriftHiveMetastore // nil: any call the fake does not implement panics

	mu      sync.Mutex
	dbs     map[string]*hms.Database
	tables  map[string]*hms.Table     // db.table
	parts   map[string]*hms.Partition // db.table/v1/v2
	failing bool
	calls   map[string]int
	server  *thrift.TSimpleServer
	addr    string
}

// StartMetastore starts a fake metastore; it stops when the test ends.
func StartMetastore(tb testing.TB) *Metastore {
	tb.Helper()
	m := &Metastore{
		dbs:    map[string]*hms.Database{},
		tables: map[string]*hms.Table{},
		parts:  map[string]*hms.Partition{},
		calls:  map[string]int{},
	}
	sock, err := thrift.NewTServerSocket("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := sock.Listen(); err != nil {
		tb.Fatal(err)
	}
	m.addr = sock.Addr().String()
	m.server = thrift.NewTSimpleServer4(hms.NewThriftHiveMetastoreProcessor(m), sock,
		thrift.NewTBufferedTransportFactory(8192), thrift.NewTBinaryProtocolFactoryConf(nil))
	go func() { _ = m.server.Serve() }()
	tb.Cleanup(func() { _ = m.server.Stop() })
	return m
}

// URI is thrift://127.0.0.1:<port>.
func (m *Metastore) URI() string { return "thrift://" + m.addr }

// SetFailing makes every call fail with a MetaException (true) or work again (false).
func (m *Metastore) SetFailing(failing bool) {
	m.mu.Lock()
	m.failing = failing
	m.mu.Unlock()
}

// Calls returns how many times method was called.
func (m *Metastore) Calls(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

// Table returns a copy of a table, or nil.
func (m *Metastore) Table(db, name string) *hms.Table {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tables[db+"."+name]
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// Partition returns a copy of a partition (its storage descriptor copied too), or nil.
func (m *Metastore) Partition(db, table string, values []string) *hms.Partition {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.parts[partKey(db, table, values)]
	if p == nil {
		return nil
	}
	c := *p
	if p.Sd != nil {
		sd := *p.Sd
		sd.Cols = append([]*hms.FieldSchema(nil), p.Sd.Cols...)
		c.Sd = &sd
	}
	return &c
}

// Partitions lists the partitions of a table as "v1/v2 -> location", sorted.
func (m *Metastore) Partitions(db, table string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	prefix := db + "." + table + "/"
	for k, p := range m.parts {
		if strings.HasPrefix(k, prefix) {
			out = append(out, strings.Join(p.Values, "/")+" -> "+p.Sd.Location)
		}
	}
	sort.Strings(out)
	return out
}

func (m *Metastore) enter(method string) error {
	m.mu.Lock()
	m.calls[method]++
	if m.failing {
		return &hms.MetaException{Message: "laketest: metastore is failing"}
	}
	return nil
}

func noSuch(format string, args ...any) error {
	return &hms.NoSuchObjectException{Message: fmt.Sprintf(format, args...)}
}

func partKey(db, table string, values []string) string {
	return db + "." + table + "/" + strings.Join(values, "/")
}

// GetDatabase implements the Thrift call.
func (m *Metastore) GetDatabase(_ context.Context, name string) (*hms.Database, error) {
	if err := m.enter("get_database"); err != nil {
		defer m.mu.Unlock()
		return nil, err
	}
	defer m.mu.Unlock()
	d, ok := m.dbs[name]
	if !ok {
		return nil, noSuch("database %s", name)
	}
	return d, nil
}

// CreateDatabase implements the Thrift call.
func (m *Metastore) CreateDatabase(_ context.Context, d *hms.Database) error {
	if err := m.enter("create_database"); err != nil {
		defer m.mu.Unlock()
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.dbs[d.Name]; ok {
		return &hms.AlreadyExistsException{Message: "database " + d.Name}
	}
	m.dbs[d.Name] = d
	return nil
}

// GetTableReq implements the Thrift call.
func (m *Metastore) GetTableReq(_ context.Context, req *hms.GetTableRequest) (*hms.GetTableResult_, error) {
	if err := m.enter("get_table_req"); err != nil {
		defer m.mu.Unlock()
		return nil, err
	}
	defer m.mu.Unlock()
	t, ok := m.tables[req.DbName+"."+req.TblName]
	if !ok {
		return nil, noSuch("table %s.%s", req.DbName, req.TblName)
	}
	return &hms.GetTableResult_{Table: t}, nil
}

// CreateTable implements the Thrift call.
func (m *Metastore) CreateTable(_ context.Context, t *hms.Table) error {
	if err := m.enter("create_table"); err != nil {
		defer m.mu.Unlock()
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.dbs[t.DbName]; !ok {
		return noSuch("database %s", t.DbName)
	}
	if _, ok := m.tables[t.DbName+"."+t.TableName]; ok {
		return &hms.AlreadyExistsException{Message: "table " + t.TableName}
	}
	m.tables[t.DbName+"."+t.TableName] = t
	return nil
}

// AlterTableWithEnvironmentContext implements the Thrift call; CASCADE=true updates the
// columns of every partition as Hive does.
func (m *Metastore) AlterTableWithEnvironmentContext(_ context.Context, db, name string, t *hms.Table, env *hms.EnvironmentContext) error {
	if err := m.enter("alter_table_with_environment_context"); err != nil {
		defer m.mu.Unlock()
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.tables[db+"."+name]; !ok {
		return noSuch("table %s.%s", db, name)
	}
	m.tables[db+"."+name] = t
	if env != nil && env.Properties["CASCADE"] == "true" {
		for k, p := range m.parts {
			if strings.HasPrefix(k, db+"."+name+"/") {
				p.Sd.Cols = t.Sd.Cols
			}
		}
	}
	return nil
}

// AddPartitionsReq implements the Thrift call.
func (m *Metastore) AddPartitionsReq(_ context.Context, req *hms.AddPartitionsRequest) (*hms.AddPartitionsResult_, error) {
	if err := m.enter("add_partitions_req"); err != nil {
		defer m.mu.Unlock()
		return nil, err
	}
	defer m.mu.Unlock()
	if _, ok := m.tables[req.DbName+"."+req.TblName]; !ok {
		return nil, noSuch("table %s.%s", req.DbName, req.TblName)
	}
	for _, p := range req.Parts {
		k := partKey(req.DbName, req.TblName, p.Values)
		if _, ok := m.parts[k]; ok {
			if !req.IfNotExists {
				return nil, &hms.AlreadyExistsException{Message: "partition " + k}
			}
			continue
		}
		m.parts[k] = p
	}
	return &hms.AddPartitionsResult_{}, nil
}

// GetPartition implements the Thrift call.
func (m *Metastore) GetPartition(_ context.Context, db, table string, values []string) (*hms.Partition, error) {
	if err := m.enter("get_partition"); err != nil {
		defer m.mu.Unlock()
		return nil, err
	}
	defer m.mu.Unlock()
	p, ok := m.parts[partKey(db, table, values)]
	if !ok {
		return nil, noSuch("partition %s", partKey(db, table, values))
	}
	return p, nil
}

// AlterPartition implements the Thrift call.
func (m *Metastore) AlterPartition(_ context.Context, db, table string, p *hms.Partition) error {
	if err := m.enter("alter_partition"); err != nil {
		defer m.mu.Unlock()
		return err
	}
	defer m.mu.Unlock()
	k := partKey(db, table, p.Values)
	if _, ok := m.parts[k]; !ok {
		return &hms.InvalidOperationException{Message: "no partition " + k}
	}
	m.parts[k] = p
	return nil
}

// Addr is the listening address, for tests that dial it themselves.
func (m *Metastore) Addr() net.Addr {
	a, _ := net.ResolveTCPAddr("tcp", m.addr)
	return a
}
