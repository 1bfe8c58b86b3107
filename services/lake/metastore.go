package lake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Hive's Parquet storage: what Hive, Trino and Spark expect in a table's storage descriptor.
const (
	ParquetInputFormat  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
	ParquetOutputFormat = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
	ParquetSerDe        = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
)

// Column is one Hive column: a name and a Hive type string (bigint, struct<a:string>, ...).
type Column struct {
	Name    string
	Type    string
	Comment string
}

// Table is an EXTERNAL Parquet table as the lake registers it.
type Table struct {
	Database      string
	Name          string
	Location      string   // URI of the table directory (FS.Location)
	Columns       []Column // data columns, in order
	PartitionKeys []Column // dt, hour
	Comment       string
	Parameters    map[string]string // extra table parameters (EXTERNAL=TRUE is always set)
}

// PartitionKeys are the lake's partition columns.
var PartitionKeys = []Column{
	{Name: PartitionDate, Type: "string", Comment: "UTC date of the collector's receive time, YYYY-MM-DD"},
	{Name: PartitionHour, Type: "string", Comment: "UTC hour of the collector's receive time, HH"},
}

// PartitionInfo is one registered partition.
type PartitionInfo struct {
	Values     []string // in partition-key order: [dt, hour]
	Location   string   // URI of the directory the partition reads
	Parameters map[string]string
	// Columns are the partition's own data columns as GetPartition reads them (the table's
	// when the partition was added, or when an AlterColumns cascaded to it). AddPartitions
	// ignores them: a partition gets the table's columns.
	Columns []Column
}

// ErrNotFound is returned (wrapped) when a database, table or partition does not exist.
var ErrNotFound = errors.New("not found in the metastore")

// SchemaConflictError says a table exists with columns the new schema cannot evolve from: a
// column changed type in a way Hive cannot read old files with. Adding fields is online;
// removing or retyping one needs a new message (a new table).
type SchemaConflictError struct {
	Table     string
	Conflicts []string // "col: have T1, want T2"
}

func (e *SchemaConflictError) Error() string {
	return fmt.Sprintf("table %s: incompatible schema change: %s", e.Table, strings.Join(e.Conflicts, "; "))
}

// Metastore is the Hive Metastore as the lake uses it. The real implementation talks Thrift to a
// Hive Metastore (NewThriftMetastore); tests may use a fake.
type Metastore interface {
	// EnsureDatabase creates the database with the given location unless it exists.
	EnsureDatabase(ctx context.Context, name, location string) error
	// GetTable returns the table, or an error wrapping ErrNotFound.
	GetTable(ctx context.Context, db, name string) (Table, error)
	// CreateTable creates the table (EXTERNAL, Parquet). It fails if it exists.
	CreateTable(ctx context.Context, t Table) error
	// AlterColumns replaces the table's data columns, cascading to its partitions (Hive's
	// ALTER TABLE ... CASCADE), so that every partition reads the new columns: Trino coerces a
	// partition's values from the partition's column types, so a partition left with a struct
	// that lacks a new field would read that field as NULL even from files that hold it. Old
	// files lack the new columns and read them as NULL (Parquet columns resolve by name). The
	// partition keys are never changed.
	AlterColumns(ctx context.Context, db, name string, cols []Column) error
	// AddPartitions registers partitions that do not exist yet; existing ones are left as they
	// are (if-not-exists). Each gets the table's storage descriptor with its own location.
	AddPartitions(ctx context.Context, db, table string, parts []PartitionInfo) error
	// GetPartition returns one partition, or an error wrapping ErrNotFound.
	GetPartition(ctx context.Context, db, table string, values []string) (PartitionInfo, error)
	// AlterPartitionLocation points an existing partition at another directory in one call:
	// queries see the old or the new files, never both (the compactor's swap).
	AlterPartitionLocation(ctx context.Context, db, table string, values []string, location string) error
	// Close releases the connection.
	Close() error
}

// EnsureTable makes the metastore hold t: it creates the table if it is missing, and appends the
// columns t has and the table lacks (also fields appended to a struct column). It never drops
// or retypes a column; a change it cannot make is a *SchemaConflictError. It returns whether
// the table was created or altered.
func EnsureTable(ctx context.Context, ms Metastore, t Table) (changed bool, err error) {
	have, err := ms.GetTable(ctx, t.Database, t.Name)
	if errors.Is(err, ErrNotFound) {
		if err := ms.CreateTable(ctx, t); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	cols, conflicts := MergeColumns(have.Columns, t.Columns)
	if len(conflicts) > 0 {
		return false, &SchemaConflictError{Table: t.Database + "." + t.Name, Conflicts: conflicts}
	}
	if slices.Equal(cols, have.Columns) {
		return false, nil
	}
	if err := ms.AlterColumns(ctx, t.Database, t.Name, cols); err != nil {
		return false, err
	}
	return true, nil
}

// MergeColumns evolves the columns a table has towards the columns a schema wants: existing
// columns keep their place (widened when want appends struct fields), missing ones are appended,
// columns the schema no longer has stay (old files still hold them). Conflicts are type changes
// other than appending struct fields. Columns are only ever appended, never inserted: readers
// that map partition columns to table columns by position (Hive; Trino unless
// hive.parquet.use-column-names) and the metastore's own check of an alteration (column types
// compared position by position) keep working.
func MergeColumns(have, want []Column) (merged []Column, conflicts []string) {
	merged = slices.Clone(have)
	index := map[string]int{}
	for i, c := range have {
		index[strings.ToLower(c.Name)] = i
	}
	for _, w := range want {
		i, ok := index[strings.ToLower(w.Name)]
		if !ok {
			merged = append(merged, w)
			continue
		}
		h := have[i]
		if NormalizeHiveType(h.Type) == NormalizeHiveType(w.Type) {
			continue
		}
		if TypeExtends(h.Type, w.Type) {
			merged[i].Type = w.Type
			continue
		}
		conflicts = append(conflicts, fmt.Sprintf("%s: have %s, want %s", w.Name, h.Type, w.Type))
	}
	return merged, conflicts
}

// NormalizeHiveType lower-cases a Hive type and removes spaces, as HMS may return it.
func NormalizeHiveType(t string) string {
	return strings.ToLower(strings.Join(strings.Fields(t), ""))
}

// TypeExtends reports whether Hive type want is have with struct fields appended (at any depth),
// which Parquet readers resolve by name: old files read the new fields as NULL.
func TypeExtends(have, want string) bool {
	h, err1 := parseHiveType(NormalizeHiveType(have))
	w, err2 := parseHiveType(NormalizeHiveType(want))
	if err1 != nil || err2 != nil {
		return false
	}
	return h.extendedBy(w)
}

type hiveType struct {
	name   string // primitive name or struct/array/map
	fields []string
	args   []*hiveType
}

func (h *hiveType) extendedBy(w *hiveType) bool {
	if h.name != w.name || len(h.args) > len(w.args) {
		return false
	}
	if h.name != "struct" && len(h.args) != len(w.args) {
		return false
	}
	for i := range h.args {
		if h.name == "struct" && h.fields[i] != w.fields[i] {
			return false
		}
		if !h.args[i].extendedBy(w.args[i]) {
			return false
		}
	}
	return true
}

// parseHiveType parses a normalised Hive type string.
func parseHiveType(s string) (*hiveType, error) {
	t, rest, err := parseHiveTypeAt(s)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("hive type %q: trailing %q", s, rest)
	}
	return t, nil
}

func parseHiveTypeAt(s string) (*hiveType, string, error) {
	for _, kind := range []string{"struct<", "array<", "map<"} {
		if !strings.HasPrefix(s, kind) {
			continue
		}
		t := &hiveType{name: strings.TrimSuffix(kind, "<")}
		rest := s[len(kind):]
		for {
			if t.name == "struct" {
				name, after, ok := strings.Cut(rest, ":")
				if !ok {
					return nil, "", fmt.Errorf("hive type: struct field without type in %q", rest)
				}
				t.fields = append(t.fields, name)
				rest = after
			}
			arg, after, err := parseHiveTypeAt(rest)
			if err != nil {
				return nil, "", err
			}
			t.args = append(t.args, arg)
			switch {
			case strings.HasPrefix(after, ","):
				rest = after[1:]
			case strings.HasPrefix(after, ">"):
				return t, after[1:], nil
			default:
				return nil, "", fmt.Errorf("hive type: unexpected %q", after)
			}
		}
	}
	// A primitive, possibly with parameters: decimal(20,0), varchar(10).
	i := strings.IndexAny(s, ",>(")
	if i < 0 {
		return &hiveType{name: s}, "", nil
	}
	if s[i] == '(' {
		j := strings.IndexByte(s, ')')
		if j < 0 {
			return nil, "", fmt.Errorf("hive type: unclosed ( in %q", s)
		}
		return &hiveType{name: s[:j+1]}, s[j+1:], nil
	}
	if i == 0 {
		return nil, "", fmt.Errorf("hive type: empty type before %q", s)
	}
	return &hiveType{name: s[:i]}, s[i:], nil
}
