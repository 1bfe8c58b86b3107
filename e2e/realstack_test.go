package e2e

// The whole pipeline against the real stack (deploy/local: Apache Kafka, HDFS, Hive Metastore,
// Trino, Spark). `make e2e` starts the stack, exports its addresses (deploy/local/stack.sh env)
// and runs this with CLICKSTREAM_E2E=1. The services run as their real binaries, so they can be
// killed with SIGKILL mid-stream.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/clickstream/clickstream/e2e/expect"
	"github.com/clickstream/clickstream/e2e/lakequery"
	"github.com/clickstream/clickstream/e2e/sender"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// stack is where the real stack (deploy/local, started by make e2e) listens.
type stack struct{ brokers, warehouse, hmsURI, hdfsUser, trinoURL string }

// realStack reads the stack's addresses (deploy/local/stack.sh env), or skips the test when
// CLICKSTREAM_E2E is not set.
func realStack(t *testing.T) stack {
	t.Helper()
	if os.Getenv("CLICKSTREAM_E2E") == "" {
		t.Skip("set CLICKSTREAM_E2E=1 and start the stack (make e2e does both)")
	}
	return stack{
		brokers:   env("CLICKSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"),
		warehouse: env("CLICKSTREAM_WAREHOUSE_URI", "hdfs://127.0.0.1:8020/warehouse"),
		hmsURI:    env("CLICKSTREAM_HMS_URI", "thrift://127.0.0.1:9083"),
		hdfsUser:  env("CLICKSTREAM_HDFS_USER", "root"),
		trinoURL:  env("CLICKSTREAM_TRINO_URL", "http://127.0.0.1:8088"),
	}
}

// lakeConfig is the lake of the real stack, as the lakewriter and compactor see it.
func (s stack) lakeConfig() lake.Config {
	return lake.Config{URL: s.warehouse, HDFSUser: s.hdfsUser, MetastoreURI: s.hmsURI,
		Database: lake.DefaultDatabase, HDFSTimeout: 30 * time.Second, MetastoreTimeout: 30 * time.Second, MetastoreRetries: 3}
}

// repoRoot is the repository root (the e2e module is one level below it).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// buildBinaries builds the service binaries the test runs.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"./collector/cmd/collector", "./validator/cmd/validator", "./lakewriter/cmd/lakewriter",
		"./compactor/cmd/compactor", "./services/cmd/clickstream")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// proc is one service binary running as a child process.
type proc struct {
	name string
	bin  string
	env  []string
	log  string
	cmd  *exec.Cmd
	// exited is closed once Wait has returned, so kill and stop can wait for the process
	// without reading cmd.ProcessState while the waiting goroutine writes it.
	exited chan struct{}
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== start %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); f.Close(); close(p.exited) }()
}

// kill stops the process with SIGKILL: no graceful shutdown, nothing flushed or committed.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	t.Logf("kill -9 %s (pid %d)", p.name, p.cmd.Process.Pid)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startServices starts procs; at the end of the test they are stopped, and the last lines of
// their logs are shown when it failed.
func startServices(t *testing.T, procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		p.start(t)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range procs {
				out, _ := exec.Command("tail", "-n", "40", p.log).Output()
				t.Logf("--- last lines of %s\n%s", p.log, out)
			}
		}
	})
}

// waitPing waits until the collector at httpAddr answers /ping.
func waitPing(t *testing.T, httpAddr string) {
	t.Helper()
	waitFor(t, 2*time.Minute, "collector /ping", func() error {
		resp, err := http.Get("http://" + httpAddr + "/ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
}

// sentEvent is one valid event the test sent, for the comparison with the lake.
type sentEvent struct {
	typ string
	msg proto.Message
}

type sentLedger struct {
	runID   string                          // prefix of every req_guid of this run
	valid   map[string]map[string]sentEvent // type → event_id → event
	invalid map[string]int                  // "type rule,rule" → count
	batches int
}

func TestRealStack(t *testing.T) {
	st := realStack(t)
	brokers, warehouse, hmsURI, hdfsUser, trinoURL := st.brokers, st.warehouse, st.hmsURI, st.hdfsUser, st.trinoURL
	bin := buildBinaries(t)
	logs := env("CLICKSTREAM_E2E_LOGS", t.TempDir())
	t.Logf("service logs in %s", logs)

	topics := exec.Command(filepath.Join(bin, "clickstream"), "topics")
	topics.Env = append(os.Environ(), "CLICKSTREAM_KAFKA_BROKERS="+brokers, "CLICKSTREAM_TOPICS_PARTITIONS=3", "CLICKSTREAM_TOPICS_REPLICATION_FACTOR=1")
	if out, err := topics.CombinedOutput(); err != nil {
		t.Fatalf("clickstream topics: %v\n%s", err, out)
	}

	const httpAddr, grpcAddr = "127.0.0.1:18080", "127.0.0.1:18081"
	collector := &proc{name: "collector", bin: filepath.Join(bin, "collector"), log: filepath.Join(logs, "collector.log"), env: []string{
		"COLLECTOR_KAFKA_BROKERS=" + brokers, "COLLECTOR_HTTP_ADDR=" + httpAddr, "COLLECTOR_GRPC_ADDR=" + grpcAddr,
		"COLLECTOR_ADMIN_ADDR=127.0.0.1:19100", "COLLECTOR_CREATE_TOPICS=false",
	}}
	validator := &proc{name: "validator", bin: filepath.Join(bin, "validator"), log: filepath.Join(logs, "validator.log"), env: []string{
		"VALIDATOR_KAFKA_BROKERS=" + brokers, "VALIDATOR_ADMIN_ADDR=127.0.0.1:19101", "VALIDATOR_INSTANCE_ID=e2e",
	}}
	lakewriter := &proc{name: "lakewriter", bin: filepath.Join(bin, "lakewriter"), log: filepath.Join(logs, "lakewriter.log"), env: []string{
		"LAKEWRITER_KAFKA_BROKERS=" + brokers, "LAKEWRITER_ADMIN_ADDR=127.0.0.1:19102",
		"LAKEWRITER_LAKE_URL=" + warehouse, "LAKEWRITER_LAKE_HDFS_USER=" + hdfsUser, "LAKEWRITER_LAKE_METASTORE_URI=" + hmsURI,
		"LAKEWRITER_ROTATE_INTERVAL=5s",
	}}
	startServices(t, collector, validator, lakewriter)
	waitPing(t, httpAddr)

	ctx := context.Background()
	at := time.Now().UTC()
	// Rows of this run are told apart from earlier runs on the same stack by their req_guid.
	ledger := &sentLedger{runID: fmt.Sprintf("e2e%d", time.Now().UnixNano()), valid: map[string]map[string]sentEvent{}, invalid: map[string]int{}}
	// Three phases; the validator is killed after the first, the lakewriter after the second,
	// each while the events just acked are still moving through it.
	sendPhase(ctx, t, httpAddr, grpcAddr, ledger, 0, at)
	validator.kill(t)
	validator.start(t)
	sendPhase(ctx, t, httpAddr, grpcAddr, ledger, 1, at)
	time.Sleep(3 * time.Second) // let the lakewriter open files of phase 2
	lakewriter.kill(t)
	lakewriter.start(t)
	sendPhase(ctx, t, httpAddr, grpcAddr, ledger, 2, at)
	t.Logf("sent %d batches, all acked SUCCESS", ledger.batches)

	trino, err := lakequery.OpenTrino(strings.Replace(trinoURL, "://", "://e2e@", 1), "clickstream")
	if err != nil {
		t.Fatal(err)
	}
	defer trino.Close()

	wantCounts := map[string]int64{}
	for _, typ := range samples.Types {
		wantCounts[typ] = int64(len(ledger.valid[typ]))
	}
	var invalidTotal int64
	for _, n := range ledger.invalid {
		invalidTotal += int64(n)
	}
	wantCounts["dead_letters"] = invalidTotal
	counts := func() (map[string]int64, error) {
		got := map[string]int64{}
		for table := range wantCounts {
			n, err := trino.Int(ctx, "SELECT count(*) FROM "+table+" WHERE "+ledger.where())
			if err != nil {
				return got, err
			}
			got[table] = n
		}
		return got, nil
	}
	lastAck := time.Now()
	waitFor(t, 4*time.Minute, "Trino counts equal to what was acked", func() error {
		got, err := counts()
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(wantCounts) {
			return fmt.Errorf("counts %v, want %v", got, wantCounts)
		}
		return nil
	})
	freshness := time.Since(lastAck)
	t.Logf("all rows visible in Trino %.1fs after the last ack", freshness.Seconds())
	// Nothing more may arrive: duplicates from the replays after kill -9 would show up here.
	time.Sleep(12 * time.Second)
	if got, err := counts(); err != nil || fmt.Sprint(got) != fmt.Sprint(wantCounts) {
		t.Fatalf("after settling: counts %v (%v), want %v", got, err, wantCounts)
	}

	checkValues(ctx, t, trino, ledger)
	checkDeadLetters(ctx, t, trino, ledger)
	checkPartitions(ctx, t, trino, ledger)
	sparkCounts := checkSpark(t, ledger, wantCounts)
	trinoCounts, _ := counts()
	var summary strings.Builder
	fmt.Fprintf(&summary, "\n%-13s %6s %6s %6s %6s %12s\n", "table", "sent", "acked", "trino", "spark", "dead letters")
	for _, table := range samples.Types {
		n := len(ledger.valid[table])
		fmt.Fprintf(&summary, "%-13s %6d %6d %6d %6s %12s\n", table, n, n, trinoCounts[table], sparkCounts[table], "-")
	}
	fmt.Fprintf(&summary, "%-13s %6d %6d %6d %6s %12d\n", "dead_letters", invalidTotal, invalidTotal, trinoCounts["dead_letters"], sparkCounts["dead_letters"], trinoCounts["dead_letters"])
	fmt.Fprintf(&summary, "freshness: every acked event visible in Trino %.1fs after the last ack (validator and lakewriter killed with -9 and restarted during the run)", freshness.Seconds())
	t.Log(summary.String())
	checkCompaction(ctx, t, trino, ledger, st.lakeConfig())
	// Spark reads the compacted partitions through the metastore too.
	checkSpark(t, ledger, wantCounts)
}

// sendPhase sends every example type's valid events and every invalid sample, spread over the
// five ways in: WebSocket binary, WebSocket JSON, HTTP protobuf, HTTP JSON and gRPC.
func sendPhase(ctx context.Context, t *testing.T, httpAddr, grpcAddr string, ledger *sentLedger, phase int, at time.Time) {
	t.Helper()
	const perType = 24
	var events []sender.Event
	for _, typ := range samples.Types {
		for k := range perType {
			i := 1000 + phase*perType + k
			m := samples.Event(typ, i, at)
			id := m.ProtoReflect().Get(m.ProtoReflect().Descriptor().Fields().ByName("event_id")).String()
			if ledger.valid[typ] == nil {
				ledger.valid[typ] = map[string]sentEvent{}
			}
			ledger.valid[typ][id] = sentEvent{typ: typ, msg: m}
			events = append(events, sender.Event{Type: typ, Bytes: samples.Marshal(m)})
		}
	}
	for _, inv := range samples.Invalids(at) {
		ledger.invalid[invalidKey(inv.Type, inv.RuleIDs)]++
		events = append(events, sender.Event{Type: inv.Type, Bytes: inv.Bytes})
	}
	// Interleave types so every batch mixes them.
	rand.New(rand.NewPCG(1, uint64(phase))).Shuffle(len(events), func(a, b int) { events[a], events[b] = events[b], events[a] })
	var batches []sender.Batch
	for i := 0; i < len(events); i += 10 {
		end := min(i+10, len(events))
		batches = append(batches, sender.Batch{ReqGUID: fmt.Sprintf("%s-%d-%d", ledger.runID, phase, i/10), SentTime: time.Now(), Events: events[i:end]})
	}
	ledger.batches += len(batches)
	byWay := make([][]sender.Batch, 5)
	for i, b := range batches {
		byWay[i%5] = append(byWay[i%5], b)
	}
	identity := func(way int) http.Header {
		return http.Header{"X-User-Id": {fmt.Sprintf("e2e-user-%d-%d", phase, way)}, "X-User-Group": {"e2e"}}
	}
	wsURL := "ws://" + httpAddr + "/api/v1/events"
	for way, asJSON := range []bool{false, true} {
		ws, err := sender.DialWebSocket(ctx, wsURL, identity(way), asJSON)
		if err != nil {
			t.Fatal(err)
		}
		acks, err := ws.Send(byWay[way], time.Minute)
		ws.Close()
		if err != nil {
			t.Fatalf("WebSocket (json=%v): %v", asJSON, err)
		}
		for _, b := range byWay[way] {
			if a := acks[b.ReqGUID]; !a.OK() {
				t.Fatalf("WebSocket batch %s: ack %+v", b.ReqGUID, a)
			}
		}
	}
	for way, asJSON := range map[int]bool{2: false, 3: true} {
		for _, b := range byWay[way] {
			a, err := sender.PostHTTP(ctx, "http://"+httpAddr+"/api/v1/events", identity(way), b, asJSON)
			if err != nil || !a.OK() {
				t.Fatalf("HTTP batch %s (json=%v): %+v %v", b.ReqGUID, asJSON, a, err)
			}
		}
	}
	g, err := sender.DialGRPC(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, b := range byWay[4] {
		a, err := g.Send(ctx, map[string]string{"x-user-id": fmt.Sprintf("e2e-user-%d-4", phase), "x-user-group": "e2e"}, b)
		if err != nil || !a.OK() {
			t.Fatalf("gRPC batch %s: %+v %v", b.ReqGUID, a, err)
		}
	}
}

// where selects the rows of this run, in SQL that Trino and Spark both accept.
func (l *sentLedger) where() string { return fmt.Sprintf("_req_guid LIKE '%s-%%'", l.runID) }

func invalidKey(typ string, rules []string) string {
	r := slices.Clone(rules)
	slices.Sort(r)
	return typ + " " + strings.Join(r, ",")
}

// checkValues compares every column of every row with the event that was sent.
func checkValues(ctx context.Context, t *testing.T, trino *lakequery.Trino, ledger *sentLedger) {
	t.Helper()
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		var columns []string
		fields := et.Message.Fields()
		for i := range fields.Len() {
			if f := fields.Get(i); f.Name() != "event_id" {
				columns = append(columns, string(f.Name()))
			}
		}
		rows, err := trino.Rows(ctx, typ, "event_id", ledger.where(), columns)
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for id, sent := range ledger.valid[typ] {
			got, ok := rows[id]
			if !ok {
				t.Errorf("%s: event %s missing", typ, id)
				continue
			}
			want := expect.Row(sent.msg)
			delete(want, "event_id")
			if d := expect.Diff(want, got, time.Millisecond); d != "" {
				bad++
				if bad <= 3 {
					t.Errorf("%s %s: %s", typ, id, d)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d rows differ from what was sent", typ, bad, len(ledger.valid[typ]))
		}
	}
}

// checkDeadLetters checks that dead_letters holds exactly the invalid events, with their rule ids.
func checkDeadLetters(ctx context.Context, t *testing.T, trino *lakequery.Trino, ledger *sentLedger) {
	t.Helper()
	rows, err := trino.Strings(ctx, `SELECT event_type, kind, array_join(array_sort(array_distinct(transform(violations, v -> v.rule_id))), ',') FROM dead_letters WHERE `+ledger.where())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r[0]+" "+r[2]]++
		if !strings.Contains(r[1], "UNKNOWN_TYPE") && !strings.Contains(r[1], "DECODE_ERROR") && !strings.Contains(r[1], "VALIDATION_FAILED") {
			t.Errorf("dead letter kind %q", r[1])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ledger.invalid) {
		t.Errorf("dead_letters by type and rule ids:\n got  %v\n want %v", got, ledger.invalid)
	}
}

// checkPartitions checks dt/hour against the receive time in every table.
func checkPartitions(ctx context.Context, t *testing.T, trino *lakequery.Trino, ledger *sentLedger) {
	t.Helper()
	for _, table := range append(slices.Clone(samples.Types), "dead_letters") {
		n, err := trino.Int(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s AND (dt <> format_datetime(_received_at, 'yyyy-MM-dd') OR hour <> format_datetime(_received_at, 'HH'))`, table, ledger.where()))
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows in the wrong dt/hour partition", table, n)
		}
	}
}

// checkSpark reads the same tables through the metastore with Spark: the same counts, and a
// sample of the same values.
func checkSpark(t *testing.T, ledger *sentLedger, wantCounts map[string]int64) map[string]string {
	t.Helper()
	var stmts []string
	tables := append(slices.Clone(samples.Types), "dead_letters")
	for _, table := range tables {
		stmts = append(stmts, fmt.Sprintf("SELECT count(*) AS n FROM clickstream.%s WHERE %s", table, ledger.where()))
	}
	stmts = append(stmts, "SELECT event_id, to_json(struct(*)) AS j FROM clickstream.purchase WHERE "+ledger.where()+" ORDER BY event_id LIMIT 5")
	results := sparkSQL(t, stmts)
	sparkCounts := map[string]string{}
	for i, table := range tables {
		if len(results[i]) == 1 {
			sparkCounts[table] = fmt.Sprint(results[i][0]["n"])
		}
		if len(results[i]) != 1 || fmt.Sprint(results[i][0]["n"]) != fmt.Sprint(wantCounts[table]) {
			t.Errorf("Spark count of %s = %v, want %d", table, results[i], wantCounts[table])
		}
	}
	sample := results[len(tables)]
	if len(sample) != 5 {
		t.Fatalf("Spark sample has %d rows", len(sample))
	}
	for _, r := range sample {
		id, _ := r["event_id"].(string)
		sent, ok := ledger.valid["purchase"][id]
		if !ok {
			t.Errorf("Spark: purchase %q was never sent", id)
			continue
		}
		got, err := lakequery.DecodeJSON(fmt.Sprint(r["j"]))
		if err != nil {
			t.Fatal(err)
		}
		gotRow := got.(map[string]any)
		want := expect.Row(sent.msg)
		for col := range gotRow {
			if _, isField := want[col]; !isField {
				delete(gotRow, col) // system and partition columns
			}
		}
		for col := range want {
			if _, present := gotRow[col]; !present {
				gotRow[col] = nil // Spark's to_json leaves out nulls
			}
		}
		if d := expect.Diff(want, gotRow, time.Millisecond); d != "" {
			t.Errorf("Spark purchase %s: %s", id, d)
		}
	}
	return sparkCounts
}

// sparkSQL runs statements in one local Spark session wired to the metastore
// (deploy/local/stack.sh spark-sql) and returns each statement's rows.
func sparkSQL(t *testing.T, stmts []string) [][]map[string]any {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "deploy/local/stack.sh"), append([]string{"spark-sql", "--per-statement"}, stmts...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("spark-sql: %v\n%s", err, tail(stderr.String(), 3000))
	}
	type result struct {
		Statement int              `json:"statement"`
		Rows      []map[string]any `json:"rows"`
	}
	var results [][]map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("spark-sql output %q: %v", line, err)
		}
		results = append(results, r.Rows)
	}
	if len(results) != len(stmts) {
		t.Fatalf("spark-sql returned %d results for %d statements", len(results), len(stmts))
	}
	return results
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor polls check until it succeeds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(2 * time.Second)
	}
}
