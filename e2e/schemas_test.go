package e2e

// A team's own schemas on the real stack, with no restart of any service: a brand-new event type
// (written to a temporary directory by this test, declared nowhere in the repository) is pushed
// while the pipeline runs, its events are sent and found in Trino and Spark; a field is added and
// old rows read NULL; a rule is relaxed and the dead letters it refused are replayed, once.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/e2e/lakequery"
	"github.com/clickstream/clickstream/e2e/sender"
	"github.com/clickstream/clickstream/schemas/compile"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
)

// checkoutProto is the team's schema, in three versions: %s is the items rule's upper bound,
// and %s an extra field (empty in the first version).
const checkoutProto = `syntax = "proto3";

package shop.v1;

import "buf/validate/validate.proto";
import "clickstream/v1/options.proto";
import "google/protobuf/timestamp.proto";

// CheckoutOpened is sent when a shopper opens the checkout.
message CheckoutOpened {
  option (clickstream.v1.event) = {type: "checkout_opened", id_field: "event_id", time_field: "event_time"};
  string event_id = 1 [(buf.validate.field).string.uuid = true];
  google.protobuf.Timestamp event_time = 2 [(buf.validate.field).required = true];
  string user_id = 3 [(buf.validate.field).string.min_len = 1];
  int32 items = 4 [(buf.validate.field).int32 = {gt: 0, lte: %s}];
  double cart_value = 5 [(buf.validate.field).double.gte = 0];
  string currency = 6 [(buf.validate.field).string.len = 3];
%s}
`

const checkoutType = "checkout_opened"

// writeSchemas writes the example schemas plus the team's checkout.proto into dir (a push
// carries every type the team keeps: a type left out would be a removal, refused).
func writeSchemas(t *testing.T, dir, maxItems, extra string) {
	t.Helper()
	src := filepath.Join(repoRoot(t), "schemas/proto/clickstream/events/v1")
	dst := filepath.Join(dir, "clickstream/events/v1")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "shop/v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop/v1/checkout.proto"), fmt.Appendf(nil, checkoutProto, maxItems, extra), 0o644); err != nil {
		t.Fatal(err)
	}
}

// clickstreamCmd runs the all-in-one command with args and returns its standard output.
func clickstreamCmd(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "clickstream"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("clickstream %s: %v\n%s\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	t.Logf("clickstream %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	return string(out)
}

// waitSchemaVersion waits until every service reports version in force (no restart).
func waitSchemaVersion(t *testing.T, admins map[string]string, version int) {
	t.Helper()
	for svc, addr := range admins {
		waitFor(t, time.Minute, fmt.Sprintf("%s on schema version %d", svc, version), func() error {
			v, err := metricSum(addr, "clickstream_"+svc+"_schema_version")
			if err != nil {
				return err
			}
			if int(v) < version {
				return fmt.Errorf("version %v", v)
			}
			return nil
		})
	}
}

// checkoutSender builds checkout_opened events from the schema compiled out of the team's
// directory: the test has no generated Go for it either.
type checkoutSender struct {
	md    protoreflect.MessageDescriptor
	runID string
	next  int
}

func newCheckoutSender(t *testing.T, dir, runID string) *checkoutSender {
	t.Helper()
	set, err := compile.Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.FromDescriptorSet(set, 1)
	if err != nil {
		t.Fatal(err)
	}
	et, ok := reg.Lookup(checkoutType)
	if !ok {
		t.Fatalf("no %s in %s", checkoutType, reg)
	}
	return &checkoutSender{md: et.Message, runID: runID}
}

// event is one checkout_opened: items as given, coupon set when not empty (version 3 on).
func (s *checkoutSender) event(t *testing.T, items int32, coupon string, at time.Time) (string, sender.Event) {
	t.Helper()
	m := dynamicpb.NewMessage(s.md)
	f := s.md.Fields()
	id := uuid.NewString()
	m.Set(f.ByName("event_id"), protoreflect.ValueOfString(id))
	m.Set(f.ByName("event_time"), protoreflect.ValueOfMessage(timestamppb.New(at).ProtoReflect()))
	m.Set(f.ByName("user_id"), protoreflect.ValueOfString(fmt.Sprintf("shopper-%d", s.next%7)))
	m.Set(f.ByName("items"), protoreflect.ValueOfInt32(items))
	m.Set(f.ByName("cart_value"), protoreflect.ValueOfFloat64(float64(s.next)+0.5))
	m.Set(f.ByName("currency"), protoreflect.ValueOfString("EUR"))
	if coupon != "" {
		m.Set(f.ByName("coupon"), protoreflect.ValueOfString(coupon))
	}
	s.next++
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return id, sender.Event{Type: checkoutType, Bytes: b}
}

// send sends events in batches of 10 over one WebSocket; every batch must be acked SUCCESS.
func (s *checkoutSender) send(ctx context.Context, t *testing.T, httpAddr, phase string, events []sender.Event) {
	t.Helper()
	var batches []sender.Batch
	for i := 0; i < len(events); i += 10 {
		batches = append(batches, sender.Batch{ReqGUID: fmt.Sprintf("%s-%s-%d", s.runID, phase, i/10), SentTime: time.Now(), Events: events[i:min(i+10, len(events))]})
	}
	ws, err := sender.DialWebSocket(ctx, "ws://"+httpAddr+"/api/v1/events", http.Header{"X-User-Id": {"shop-" + phase}}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	acks, err := ws.Send(batches, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if a := acks[b.ReqGUID]; !a.OK() {
			t.Fatalf("batch %s: ack %+v", b.ReqGUID, a)
		}
	}
}

func TestRealStackSchemas(t *testing.T) {
	st := realStack(t)
	brokers, warehouse, hmsURI, hdfsUser, trinoURL := st.brokers, st.warehouse, st.hmsURI, st.hdfsUser, st.trinoURL
	bin := buildBinaries(t)
	logs := env("CLICKSTREAM_E2E_LOGS", t.TempDir())
	// A schema topic of this run's own, so the test runs again on a stack that has seen it
	// (each push must carry every type of the versions before it); the services follow it.
	runID := fmt.Sprintf("sch%d", time.Now().UnixNano())
	schemasTopic := "_clickstream_schemas_" + runID
	cli := []string{"CLICKSTREAM_KAFKA_BROKERS=" + brokers, "CLICKSTREAM_TOPICS_PARTITIONS=3", "CLICKSTREAM_TOPICS_REPLICATION_FACTOR=1",
		"CLICKSTREAM_SCHEMAS_TOPIC=" + schemasTopic}
	clickstreamCmd(t, bin, cli, "topics") // registers the examples as version 1 on the empty topic

	const httpAddr = "127.0.0.1:18090"
	admins := map[string]string{"collector": "127.0.0.1:19110", "validator": "127.0.0.1:19111", "lakewriter": "127.0.0.1:19112"}
	procs := []*proc{
		{name: "collector", bin: filepath.Join(bin, "collector"), log: filepath.Join(logs, "schemas-collector.log"), env: []string{
			"COLLECTOR_KAFKA_BROKERS=" + brokers, "COLLECTOR_HTTP_ADDR=" + httpAddr, "COLLECTOR_GRPC_ADDR=",
			"COLLECTOR_ADMIN_ADDR=" + admins["collector"], "COLLECTOR_CREATE_TOPICS=false", "COLLECTOR_SCHEMAS_TOPIC=" + schemasTopic,
		}},
		{name: "validator", bin: filepath.Join(bin, "validator"), log: filepath.Join(logs, "schemas-validator.log"), env: []string{
			"VALIDATOR_KAFKA_BROKERS=" + brokers, "VALIDATOR_ADMIN_ADDR=" + admins["validator"], "VALIDATOR_INSTANCE_ID=e2e",
			"VALIDATOR_SCHEMAS_TOPIC=" + schemasTopic,
		}},
		{name: "lakewriter", bin: filepath.Join(bin, "lakewriter"), log: filepath.Join(logs, "schemas-lakewriter.log"), env: []string{
			"LAKEWRITER_KAFKA_BROKERS=" + brokers, "LAKEWRITER_ADMIN_ADDR=" + admins["lakewriter"],
			"LAKEWRITER_LAKE_URL=" + warehouse, "LAKEWRITER_LAKE_HDFS_USER=" + hdfsUser, "LAKEWRITER_LAKE_METASTORE_URI=" + hmsURI,
			"LAKEWRITER_ROTATE_INTERVAL=5s", "LAKEWRITER_SCHEMAS_TOPIC=" + schemasTopic,
		}},
	}
	startServices(t, procs...)
	waitPing(t, httpAddr)
	pids := map[string]int{}
	for _, p := range procs {
		pids[p.name] = p.cmd.Process.Pid
	}

	ctx := context.Background()
	dir := t.TempDir()
	at := time.Now().UTC()

	// Version N: the new type, with items at most 100.
	writeSchemas(t, dir, "100", "")
	out := clickstreamCmd(t, bin, cli, "schemas", "push", "-m", "checkout_opened", dir)
	v1 := pushedVersion(t, out)
	waitSchemaVersion(t, admins, v1)
	cs := newCheckoutSender(t, dir, runID)
	const valid1, invalid, valid2 = 40, 12, 30
	var events []sender.Event
	for range valid1 {
		_, e := cs.event(t, 3, "", at)
		events = append(events, e)
	}
	for range invalid {
		_, e := cs.event(t, 500, "", at) // over the limit: dead-lettered, replayed after the fix
		events = append(events, e)
	}
	cs.send(ctx, t, httpAddr, "a", events)

	trino, err := lakequery.OpenTrino(strings.Replace(trinoURL, "://", "://e2e@", 1), "clickstream")
	if err != nil {
		t.Fatal(err)
	}
	defer trino.Close()
	where := fmt.Sprintf("_req_guid LIKE '%s-%%'", runID)
	wantCount := func(query string, want int64) func() error {
		return func() error {
			n, err := trino.Int(ctx, query)
			if err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("%s: %d, want %d", query, n, want)
			}
			return nil
		}
	}
	waitFor(t, 3*time.Minute, "the new type's rows in Trino", wantCount("SELECT count(*) FROM checkout_opened WHERE "+where, valid1))
	// TestRealStack compacts the current hour of every table on purpose (an unsealed hour); files
	// committed into such a partition afterwards are seen after its next compaction (README,
	// Compactor, known limit), so the dead letters' partitions are compacted before counting.
	comp := newCompactor(t, st)
	waitFor(t, time.Minute, "its dead letters in Trino", func() error {
		compactRun(ctx, t, comp, trino, "dead_letters", where)
		return wantCount(fmt.Sprintf("SELECT count(*) FROM dead_letters WHERE event_type = '%s' AND %s", checkoutType, where), invalid)()
	})

	// Version N+1: a field added. Old rows read NULL, new rows carry it.
	writeSchemas(t, dir, "100", "  string coupon = 7 [(buf.validate.field).string.max_len = 20];\n")
	v2 := pushedVersion(t, clickstreamCmd(t, bin, cli, "schemas", "push", "-m", "coupon", dir))
	waitSchemaVersion(t, admins, v2)
	diff := clickstreamCmd(t, bin, cli, "schemas", "diff", strconv.Itoa(v1), strconv.Itoa(v2))
	if !strings.Contains(diff, "coupon") {
		t.Errorf("schemas diff %d %d does not name the new field:\n%s", v1, v2, diff)
	}
	cs = newCheckoutSender(t, dir, runID)
	cs.next = 1000
	events = events[:0]
	for range valid2 {
		_, e := cs.event(t, 2, "WINTER26", at)
		events = append(events, e)
	}
	cs.send(ctx, t, httpAddr, "b", events)
	waitFor(t, 3*time.Minute, "rows with the new column in Trino", wantCount("SELECT count(*) FROM checkout_opened WHERE coupon = 'WINTER26' AND "+where, valid2))
	waitFor(t, time.Minute, "old rows NULL in the new column", wantCount("SELECT count(*) FROM checkout_opened WHERE coupon IS NULL AND "+where, valid1))

	// An incompatible push is refused and changes nothing.
	bad := t.TempDir()
	writeSchemas(t, bad, "100", "  int64 coupon = 7;\n")
	cmd := exec.Command(filepath.Join(bin, "clickstream"), "schemas", "push", bad)
	cmd.Env = append(os.Environ(), cli...)
	if msg, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(msg), "checkout.proto:") {
		t.Errorf("an incompatible push (coupon string -> int64): err %v, output must name checkout.proto:line\n%s", err, msg)
	} else {
		t.Logf("incompatible push refused: %s", strings.TrimSpace(string(msg)))
	}

	// Version N+2: the rule relaxed; the dead letters now pass and are replayed, once.
	writeSchemas(t, dir, "1000", "  string coupon = 7 [(buf.validate.field).string.max_len = 20];\n")
	v3 := pushedVersion(t, clickstreamCmd(t, bin, cli, "schemas", "push", "-m", "items up to 1000", dir))
	waitSchemaVersion(t, admins, v3)
	replay := clickstreamCmd(t, bin, cli, "dlq", "replay", "--type", checkoutType, "--since", at.Add(-time.Hour).Format(time.RFC3339))
	if !strings.Contains(replay, fmt.Sprintf("replayed %d ", invalid)) {
		t.Errorf("first replay: want %d replayed:\n%s", invalid, replay)
	}
	all := int64(valid1 + valid2 + invalid)
	waitFor(t, 3*time.Minute, "replayed rows in Trino", wantCount("SELECT count(*) FROM checkout_opened WHERE "+where, all))
	waitFor(t, time.Minute, "replayed rows marked", wantCount("SELECT count(*) FROM checkout_opened WHERE _replayed_from_dlq AND "+where, invalid))
	replay = clickstreamCmd(t, bin, cli, "dlq", "replay", "--type", checkoutType, "--since", at.Add(-time.Hour).Format(time.RFC3339))
	if !strings.Contains(replay, "replayed 0 ") {
		t.Errorf("second replay: want 0 replayed:\n%s", replay)
	}
	time.Sleep(12 * time.Second) // two rotations: a second copy would be visible now
	if err := wantCount("SELECT count(*) FROM checkout_opened WHERE "+where, all)(); err != nil {
		t.Errorf("after the second replay: %v", err)
	}
	if err := wantCount("SELECT count(DISTINCT event_id) FROM checkout_opened WHERE "+where, all)(); err != nil {
		t.Errorf("distinct event ids: %v", err)
	}

	// Spark reads the new table through the metastore: the counts, NULLs and the marker.
	spark := sparkCounts(t, []string{
		"SELECT count(*) AS n FROM clickstream.checkout_opened WHERE " + where,
		"SELECT count(*) AS n FROM clickstream.checkout_opened WHERE coupon IS NULL AND " + where,
		"SELECT count(*) AS n FROM clickstream.checkout_opened WHERE coupon = 'WINTER26' AND " + where,
		"SELECT count(*) AS n FROM clickstream.checkout_opened WHERE _replayed_from_dlq AND " + where,
	})
	// The replayed events carry no coupon either, but they were written under a version that has
	// the column: a proto3 string without presence is "" there, NULL only in the older files.
	if want := []int64{all, valid1, valid2, invalid}; fmt.Sprint(spark) != fmt.Sprint(want) {
		t.Errorf("Spark counts (all, coupon NULL, coupon set, replayed) = %v, want %v", spark, want)
	}

	// The new table is compacted like the others: same rows, one copy each.
	compactRun(ctx, t, comp, trino, checkoutType, where)
	if err := wantCount("SELECT count(*) FROM checkout_opened WHERE "+where, all)(); err != nil {
		t.Errorf("after compaction: %v", err)
	}

	// No service was restarted.
	for _, p := range procs {
		if p.cmd.Process.Pid != pids[p.name] {
			t.Errorf("%s was restarted", p.name)
		}
		select {
		case <-p.exited:
			t.Errorf("%s exited during the test", p.name)
		default:
		}
	}
	t.Logf("schema versions %d (new type), %d (field added), %d (rule relaxed): %d + %d rows, %d dead letters replayed once, all without a restart",
		v1, v2, v3, valid1, valid2, invalid)
}

// pushedVersion reads "pushed version N" from schemas push's output.
func pushedVersion(t *testing.T, out string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(out[strings.Index(out, "pushed version"):], "pushed version %d", &n); err != nil {
		t.Fatalf("schemas push did not push: %q", out)
	}
	return n
}

// sparkCounts runs count queries (one column n) in Spark.
func sparkCounts(t *testing.T, stmts []string) []int64 {
	t.Helper()
	rows := sparkSQL(t, stmts)
	out := make([]int64, len(rows))
	for i, r := range rows {
		if len(r) == 1 {
			n, _ := strconv.ParseInt(fmt.Sprint(r[0]["n"]), 10, 64)
			out[i] = n
		}
	}
	return out
}

// newCompactor is a compactor of the real stack's lake, run in process.
func newCompactor(t *testing.T, st stack) *compactor.Compactor {
	t.Helper()
	cfg := compactor.DefaultConfig()
	cfg.Lake = st.lakeConfig()
	cfg.Telemetry.AdminAddr = ""
	c, err := compactor.New(cfg, run.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Reg: telemetry.NewRegistry(), Health: telemetry.NewHealth()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// compactRun compacts the partitions of table that hold rows of this run (where), now.
func compactRun(ctx context.Context, t *testing.T, c *compactor.Compactor, trino *lakequery.Trino, table, where string) {
	t.Helper()
	parts, err := trino.Strings(ctx, "SELECT DISTINCT dt, hour FROM checkout_opened WHERE "+where)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if _, err := c.CompactPartition(ctx, table, lake.Partition{Date: p[0], Hour: p[1]}); err != nil {
			t.Fatalf("compact %s %v: %v", table, p, err)
		}
	}
}
