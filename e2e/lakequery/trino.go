// Package lakequery reads the lake the way analysts and data engineers do: through Trino's hive
// catalog and through Spark on the Hive Metastore, never by path. Values come back as JSON and
// are normalised with package expect, so a test can compare every column with what was sent.
package lakequery

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/trinodb/trino-go-client/trino"

	"github.com/clickstream/clickstream/e2e/expect"
)

// Trino is a connection to a Trino coordinator's hive catalog.
type Trino struct {
	db     *sql.DB
	schema string
}

// OpenTrino connects to serverURI (http://user@host:port), catalog hive, the given schema, with
// the session time zone UTC so timestamps come back as stored.
func OpenTrino(serverURI, schema string) (*Trino, error) {
	cfg := &trino.Config{ServerURI: serverURI, Catalog: "hive", Schema: schema, TimeZone: "UTC", Source: "clickstream-e2e"}
	dsn, err := cfg.FormatDSN()
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("trino", dsn)
	if err != nil {
		return nil, err
	}
	return &Trino{db: db, schema: schema}, nil
}

// Close closes the connection pool.
func (t *Trino) Close() error { return t.db.Close() }

// Int runs a query returning one integer, such as count(*).
func (t *Trino) Int(ctx context.Context, query string) (int64, error) {
	var n int64
	if err := t.db.QueryRowContext(ctx, query).Scan(&n); err != nil {
		return 0, fmt.Errorf("trino %q: %w", query, err)
	}
	return n, nil
}

// Strings runs a query and returns every row's columns as strings (NULL as "<null>").
func (t *Trino) Strings(ctx context.Context, query string) ([][]string, error) {
	rows, err := t.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("trino %q: %w", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("trino %q: scan: %w", query, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "<null>"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trino %q: %w", query, err)
	}
	return out, nil
}

// Rows reads the given columns of the rows of table matching where (SQL; empty: all) as JSON,
// keyed by the value of keyColumn, normalised with expect.Normalize. Each column is cast to JSON in Trino, so nested rows, arrays, maps and
// timestamps come back in one comparable form.
func (t *Trino) Rows(ctx context.Context, table, keyColumn, where string, columns []string) (map[string]map[string]any, error) {
	exprs := []string{fmt.Sprintf("CAST(%s AS varchar)", quote(keyColumn))}
	for _, c := range columns {
		exprs = append(exprs, fmt.Sprintf("json_format(CAST(%s AS JSON))", quote(c)))
	}
	query := fmt.Sprintf("SELECT %s FROM %s", strings.Join(exprs, ", "), quote(table))
	if where != "" {
		query += " WHERE " + where
	}
	rows, err := t.Strings(ctx, query)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(rows))
	for _, r := range rows {
		row := make(map[string]any, len(columns))
		for i, c := range columns {
			v, err := DecodeJSON(r[i+1])
			if err != nil {
				return nil, fmt.Errorf("%s.%s of %s: %w", table, c, r[0], err)
			}
			row[c] = v
		}
		if _, dup := out[r[0]]; dup {
			return nil, fmt.Errorf("%s: %s %q appears twice", table, keyColumn, r[0])
		}
		out[r[0]] = row
	}
	return out, nil
}

// DecodeJSON decodes one JSON value ("<null>" is SQL NULL) and normalises it with ParseTime.
func DecodeJSON(s string) (any, error) {
	if s == "<null>" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode %q: %w", s, err)
	}
	return expect.Normalize(v, ParseTime), nil
}

// ParseTime recognises the timestamp renderings of Trino's and Spark's JSON casts.
func ParseTime(s string) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' {
		return time.Time{}, false
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }
