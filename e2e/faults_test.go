package e2e

// Faults on the real stack under a steady load: each service is killed with SIGKILL at a moment
// its metrics show it holds work (a batch in flight, records not yet judged, rows in open files),
// then the Kafka broker is stopped for 30 s. Every event acked SUCCESS must be in the lake exactly
// once; the sender's ledger is the reference.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickstream/clickstream/e2e/lakequery"
	"github.com/clickstream/clickstream/e2e/sender"
	"github.com/clickstream/clickstream/schemas/samples"
)

// metricSum is the sum of every series of the metric name at a service's admin server.
func metricSum(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, err
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("%s: no metric %s", addr, name)
	}
	return sum, nil
}

// steadyLoad sends click events over several WebSockets at a fixed rate and keeps the ledger:
// which event ids were acked SUCCESS. A connection that breaks (the collector was killed) is
// dialled again; a batch without a SUCCESS ack is not in the ledger (it may or may not be in the
// lake: never acked, never promised).
type steadyLoad struct {
	runID string
	mu    sync.Mutex
	acked map[string]bool
	sent  int
	// errors counts batches answered with an error or left without an answer.
	errors  int
	stop    chan struct{}
	stopped sync.WaitGroup
}

func startLoad(t *testing.T, httpAddr, runID string, conns, batch int, perSecond float64) *steadyLoad {
	l := &steadyLoad{runID: runID, acked: map[string]bool{}, stop: make(chan struct{})}
	at := time.Now().UTC()
	// Event ids are samples.Event's, a function of i: this run's i start far above the other
	// tests' (which use small ones) and differ per run, so the compactor's deduplication by event
	// id never meets two tests' events with one id.
	base := int(time.Now().Unix()%100_000) * 1_000_000_000
	interval := time.Duration(float64(time.Second) * float64(conns*batch) / perSecond)
	for c := range conns {
		l.stopped.Add(1)
		go func() {
			defer l.stopped.Done()
			var ws *sender.WebSocket
			defer func() {
				if ws != nil {
					ws.Close()
				}
			}()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				if ws == nil {
					var err error
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					ws, err = sender.DialWebSocket(ctx, "ws://"+httpAddr+"/api/v1/events",
						http.Header{"X-User-Id": {fmt.Sprintf("%s-conn-%d", runID, c)}}, false)
					cancel()
					if err != nil {
						ws = nil
						continue
					}
				}
				b := sender.Batch{ReqGUID: fmt.Sprintf("%s-%d-%d", runID, c, n), SentTime: time.Now()}
				var ids []string
				for k := range batch {
					i := base + (c*1_000_000+n)*batch + k
					m := samples.Event("click", i, at)
					ids = append(ids, m.ProtoReflect().Get(m.ProtoReflect().Descriptor().Fields().ByName("event_id")).String())
					b.Events = append(b.Events, sender.Event{Type: "click", Bytes: samples.Marshal(m)})
				}
				acks, err := ws.Send([]sender.Batch{b}, 15*time.Second)
				l.mu.Lock()
				l.sent += len(ids)
				if a, ok := acks[b.ReqGUID]; ok && a.OK() {
					for _, id := range ids {
						l.acked[id] = true
					}
				} else {
					l.errors++
				}
				l.mu.Unlock()
				if err != nil {
					ws.Close()
					ws = nil
				}
			}
		}()
	}
	return l
}

func (l *steadyLoad) finish() {
	close(l.stop)
	l.stopped.Wait()
}

func (l *steadyLoad) counts() (sent, acked, errors int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, len(l.acked), l.errors
}

// killWhileBusy waits until busy() reports work in flight at p, then kills p with SIGKILL and
// starts it again; it returns what busy measured.
func killWhileBusy(t *testing.T, p *proc, what string, busy func() (float64, error)) float64 {
	t.Helper()
	// A killed consumer's partitions move on once its group session expires (45 s), so the next
	// stage may be idle that long after a kill upstream.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		v, err := busy()
		if err == nil && v > 0 {
			p.kill(t)
			t.Logf("killed %s while %s = %v", p.name, what, v)
			p.start(t)
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed work in flight (%s = %v, %v): the kill would prove nothing", p.name, what, v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFaults is not part of make e2e yet (make e2e-faults runs it): in one of three runs the
// validator stopped during the broker outage ("end transaction: unable to dial"; an error ending
// a transaction stops it instead of backing off), and 25,400 acked events waited in the raw topic
// until another validator of the group started. The liveness check below names a service that
// exits.
func TestFaults(t *testing.T) {
	st := realStack(t)
	bin := buildBinaries(t)
	logs := env("CLICKSTREAM_E2E_LOGS", t.TempDir())
	clickstreamCmd(t, bin, []string{"CLICKSTREAM_KAFKA_BROKERS=" + st.brokers, "CLICKSTREAM_TOPICS_PARTITIONS=3", "CLICKSTREAM_TOPICS_REPLICATION_FACTOR=1"}, "topics")

	const httpAddr = "127.0.0.1:18095"
	admin := map[string]string{"collector": "127.0.0.1:19130", "validator": "127.0.0.1:19131", "lakewriter": "127.0.0.1:19132"}
	collector := &proc{name: "collector", bin: filepath.Join(bin, "collector"), log: filepath.Join(logs, "faults-collector.log"), env: []string{
		"COLLECTOR_KAFKA_BROKERS=" + st.brokers, "COLLECTOR_HTTP_ADDR=" + httpAddr, "COLLECTOR_GRPC_ADDR=",
		"COLLECTOR_ADMIN_ADDR=" + admin["collector"], "COLLECTOR_CREATE_TOPICS=false",
	}}
	validator := &proc{name: "validator", bin: filepath.Join(bin, "validator"), log: filepath.Join(logs, "faults-validator.log"), env: []string{
		"VALIDATOR_KAFKA_BROKERS=" + st.brokers, "VALIDATOR_ADMIN_ADDR=" + admin["validator"], "VALIDATOR_INSTANCE_ID=e2e",
	}}
	lakewriter := &proc{name: "lakewriter", bin: filepath.Join(bin, "lakewriter"), log: filepath.Join(logs, "faults-lakewriter.log"), env: []string{
		"LAKEWRITER_KAFKA_BROKERS=" + st.brokers, "LAKEWRITER_ADMIN_ADDR=" + admin["lakewriter"],
		"LAKEWRITER_LAKE_URL=" + st.warehouse, "LAKEWRITER_LAKE_HDFS_USER=" + st.hdfsUser, "LAKEWRITER_LAKE_METASTORE_URI=" + st.hmsURI,
		"LAKEWRITER_ROTATE_INTERVAL=10s",
	}}
	startServices(t, collector, validator, lakewriter)
	waitPing(t, httpAddr)

	runID := fmt.Sprintf("flt%d", time.Now().UnixNano())
	const rate = 2500.0
	load := startLoad(t, httpAddr, runID, 4, 25, rate)
	started := time.Now()
	defer func() {
		select {
		case <-load.stop:
		default:
			load.finish()
		}
	}()
	time.Sleep(10 * time.Second)
	sent, acked, _ := load.counts()
	t.Logf("steady load: %d events sent, %d acked in %.0fs (target %.0f/s)", sent, acked, time.Since(started).Seconds(), rate)

	killWhileBusy(t, collector, "inflight_batches", func() (float64, error) {
		return metricSum(admin["collector"], "clickstream_collector_inflight_batches")
	})
	waitPing(t, httpAddr)
	time.Sleep(5 * time.Second)
	killWhileBusy(t, validator, "transaction_open_records", func() (float64, error) {
		return metricSum(admin["validator"], "clickstream_validator_transaction_open_records")
	})
	time.Sleep(10 * time.Second)
	killWhileBusy(t, lakewriter, "open_files", func() (float64, error) {
		return metricSum(admin["lakewriter"], "clickstream_lakewriter_open_files")
	})
	time.Sleep(10 * time.Second)

	// The broker stops for 30 s: the collector answers errors, never SUCCESS for what Kafka
	// does not have; every service carries on by itself when it is back.
	_, ackedBefore, errorsBefore := load.counts()
	stack := filepath.Join(repoRoot(t), "deploy/local/stack.sh")
	if out, err := exec.Command(stack, "down", "kafka").CombinedOutput(); err != nil {
		t.Fatalf("stop kafka: %v\n%s", err, out)
	}
	downAt := time.Now()
	time.Sleep(30 * time.Second)
	_, ackedDown, errorsDown := load.counts()
	if out, err := exec.Command(stack, "up", "kafka").CombinedOutput(); err != nil {
		t.Fatalf("start kafka: %v\n%s", err, out)
	}
	t.Logf("broker down 30 s: acked %d -> %d (in-flight batches settling), error answers %d -> %d", ackedBefore, ackedDown, errorsBefore, errorsDown)
	if errorsDown == errorsBefore {
		t.Errorf("no error answers while the broker was down: the fault did not reach the clients")
	}
	waitFor(t, 3*time.Minute, "acks again after the broker restart", func() error {
		_, a, _ := load.counts()
		if a <= ackedDown {
			return fmt.Errorf("acked still %d", a)
		}
		return nil
	})
	t.Logf("acks resumed %.0fs after the broker stopped", time.Since(downAt).Seconds())
	time.Sleep(10 * time.Second)
	load.finish()
	sent, acked, errs := load.counts()
	lastAck := time.Now()
	t.Logf("load done: %d events sent, %d acked, %d batches answered with an error or not at all", sent, acked, errs)

	trino, err := lakequery.OpenTrino(strings.Replace(st.trinoURL, "://", "://e2e@", 1), "clickstream")
	if err != nil {
		t.Fatal(err)
	}
	defer trino.Close()
	where := fmt.Sprintf("_req_guid LIKE '%s-%%'", runID)
	var inLake map[string]int
	waitFor(t, 6*time.Minute, "every acked event in Trino", func() error {
		for _, p := range []*proc{collector, validator, lakewriter} {
			select {
			case <-p.exited:
				t.Fatalf("%s exited after the faults and was not restarted (log %s)", p.name, p.log)
			default:
			}
		}
		rows, err := trino.Strings(context.Background(), "SELECT event_id, count(*) FROM click WHERE "+where+" GROUP BY event_id")
		if err != nil {
			return err
		}
		inLake = map[string]int{}
		for _, r := range rows {
			n, _ := strconv.Atoi(r[1])
			inLake[r[0]] = n
		}
		missing := 0
		for id := range load.acked {
			if inLake[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acked events not in the lake yet", missing, acked)
		}
		return nil
	})
	t.Logf("every acked event visible in Trino %.0fs after the last ack", time.Since(lastAck).Seconds())
	time.Sleep(15 * time.Second) // a late duplicate (a replay after a kill) would land by now
	rows, err := trino.Strings(context.Background(), "SELECT count(*), count(DISTINCT event_id) FROM click WHERE "+where)
	if err != nil {
		t.Fatal(err)
	}
	total, distinct := rows[0][0], rows[0][1]
	if total != distinct {
		t.Errorf("duplicates in the lake: %s rows, %s distinct event ids", total, distinct)
	}
	t.Logf("\n%-10s %8s %8s %10s %10s %8s\n%-10s %8d %8d %10s %10s %8d", "faults", "sent", "acked", "lake rows", "distinct", "missing",
		"all", sent, acked, total, distinct, 0)
}
