package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/e2e/lakequery"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
)

// checkCompaction compacts this run's partitions of every table (CompactPartition: not waiting
// for the hour to be sealed) while a query loop counts one of them in Trino. Counts and a checksum
// of every value must be unchanged (the pipeline wrote no duplicates), and the loop must never see
// a count other than the one before.
func checkCompaction(ctx context.Context, t *testing.T, trino *lakequery.Trino, ledger *sentLedger, lakeCfg lake.Config) {
	t.Helper()
	cfg := compactor.DefaultConfig()
	cfg.Lake = lakeCfg
	cfg.Telemetry.AdminAddr = ""
	deps := run.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Reg: telemetry.NewRegistry(), Health: telemetry.NewHealth()}
	c, err := compactor.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tables := append(slices.Clone(samples.Types), "dead_letters")
	parts, err := trino.Strings(ctx, "SELECT DISTINCT dt, hour FROM purchase WHERE "+ledger.where())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		part := lake.Partition{Date: p[0], Hour: p[1]}
		in := fmt.Sprintf("dt = '%s' AND hour = '%s'", part.Date, part.Hour)
		before := map[string]string{}
		for _, table := range tables {
			before[table] = partitionChecksum(ctx, t, trino, table, in)
		}
		loopCount := fmt.Sprintf("SELECT count(*) FROM purchase WHERE %s", in)
		want, err := trino.Int(ctx, loopCount)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var seen []int64
		var loopErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := trino.Int(ctx, loopCount)
				if err != nil {
					loopErr = err
					return
				}
				seen = append(seen, n)
			}
		}()
		for _, table := range tables {
			rep, err := c.CompactPartition(ctx, table, part)
			if err != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("compact %s %v: %v", table, part, err)
			}
			if rep != nil {
				t.Logf("compacted %s %s/%s: %d files → %d, %d rows → %d, %d duplicates", table, part.Date, part.Hour, rep.FilesIn, rep.FilesOut, rep.RowsIn, rep.RowsOut, rep.Duplicates)
				if rep.Duplicates != 0 {
					t.Errorf("%s: compaction dropped %d duplicates; the pipeline must not write any", table, rep.Duplicates)
				}
			}
		}
		close(stop)
		wg.Wait()
		if loopErr != nil {
			t.Fatalf("query loop during compaction: %v", loopErr)
		}
		for _, n := range seen {
			if n != want {
				t.Fatalf("query loop during compaction saw count %d, want %d always (%d queries)", n, want, len(seen))
			}
		}
		t.Logf("query loop: %d counts during compaction, all %d", len(seen), want)
		for _, table := range tables {
			if after := partitionChecksum(ctx, t, trino, table, in); after != before[table] {
				t.Errorf("%s %v: count and checksum %s after compaction, %s before", table, part, after, before[table])
			}
		}
	}
}

// partitionChecksum is the row count and an order-independent checksum of every column of one
// partition of a table, computed by Trino.
func partitionChecksum(ctx context.Context, t *testing.T, trino *lakequery.Trino, table, where string) string {
	t.Helper()
	var cols []string
	if et, ok := registry.Default().Lookup(table); ok {
		fields := et.Message.Fields()
		for i := range fields.Len() {
			cols = append(cols, `"`+string(fields.Get(i).Name())+`"`)
		}
	} else {
		cols = []string{"kind", "event_type", "message", "to_base64(event_bytes)", "source_topic", "source_partition", "source_offset", "received_at", "violations", "error"}
	}
	cols = append(cols, "_received_at", "_req_guid", "_event_index", "_conn_group", "_kafka_partition", "_kafka_offset")
	q := fmt.Sprintf("SELECT CAST(count(*) AS varchar) || ':' || to_hex(checksum(json_format(CAST(ROW(%s) AS JSON)))) FROM %s WHERE %s",
		strings.Join(cols, ", "), table, where)
	rows, err := trino.Strings(ctx, q)
	if err != nil || len(rows) != 1 {
		t.Fatalf("checksum of %s: %v %v", table, rows, err)
	}
	return rows[0][0]
}
