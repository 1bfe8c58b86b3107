package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/validator/validatortest"
)

// helperEnv makes TestValidatorProcess run a validator instead of skipping.
const helperEnv = "VALIDATOR_TEST_PROCESS"

// TestValidatorProcess is not a test: re-executed by TestCrash with helperEnv=1, it runs a
// validator configured from the VALIDATOR_* environment until it is killed, or until SIGTERM
// (then it shuts down gracefully and exits 0).
func TestValidatorProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("runs only as TestCrash's subprocess")
	}
	cfg := DefaultConfig()
	cfg.Telemetry.AdminAddr = ""
	if err := config.FromEnv(&cfg, EnvPrefix); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, err := New(cfg, run.Deps{Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := v.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// process is one validator subprocess.
type process struct {
	cmd  *exec.Cmd
	done chan error
}

func startProcess(t *testing.T, brokers []string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestValidatorProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1",
		EnvPrefix+"KAFKA_BROKERS="+strings.Join(brokers, ","),
		EnvPrefix+"INSTANCE_ID=crash", // the same across restarts: a restart fences its predecessor
		EnvPrefix+"CREATE_TOPICS=false",
		EnvPrefix+"SESSION_TIMEOUT=1s",
		EnvPrefix+"METADATA_MAX_AGE=300ms",
		EnvPrefix+"PRODUCER_LINGER=0s",
	)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout = testWriter{t}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// killPoint is where a validator process is killed: at the nth request of a kind, after which
// the request is either dropped (the connection closes, as when the process dies before it
// was sent) or still handled by the broker (as when it dies right after sending it).
type killPoint struct {
	name    string
	key     kmsg.Key // Produce, TxnOffsetCommit or EndTxn
	nth     int
	deliver bool
}

// TestCrash kills the validator with SIGKILL at each step of its transactions, in turn (while
// producing, while committing offsets, before and after the commit reaches the broker), restarts
// it each time, and checks that in the end every raw record is in exactly one output, once.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs validator subprocesses")
	}
	c := startKafka(t, contractTopics()...)
	brokers := c.ListenAddrs()
	events := validatortest.Mixed(kafka.DefaultRawTopicPattern, 0, 600, testBase)
	produce(t, c, events)

	points := []killPoint{
		{"mid-produce", kmsg.Produce, 5, false},
		{"at offset commit", kmsg.TxnOffsetCommit, 3, false},
		{"before the commit reaches Kafka", kmsg.EndTxn, 4, false},
		{"after the commit reached Kafka", kmsg.EndTxn, 3, true},
		{"mid-produce again", kmsg.Produce, 2, false},
	}
	var (
		mu     sync.Mutex
		armed  *killPoint
		seen   int
		victim *process
		fired  = make(chan string, 1)
	)
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		if armed == nil || kmsg.Key(req.Key()) != armed.key {
			return nil, nil, false
		}
		switch r := req.(type) {
		case *kmsg.ProduceRequest:
			if r.TransactionID == nil { // the test's own producer
				return nil, nil, false
			}
		case *kmsg.EndTxnRequest:
			if !r.Commit {
				return nil, nil, false
			}
		}
		if seen++; seen < armed.nth {
			return nil, nil, false
		}
		_ = victim.cmd.Process.Kill() // SIGKILL: no shutdown, no flush, no leave-group
		kp := *armed
		armed = nil
		fired <- kp.name
		if kp.deliver {
			return nil, nil, false
		}
		return nil, errors.New("killed"), true
	})

	for _, kp := range points {
		p := startProcess(t, brokers, EnvPrefix+"MAX_POLL_RECORDS=20")
		mu.Lock()
		armed, seen, victim = &kp, 0, p
		mu.Unlock()
		select {
		case name := <-fired:
			t.Logf("killed %s", name)
		case err := <-p.done:
			t.Fatalf("validator exited before the %s kill: %v", kp.name, err)
		case <-time.After(60 * time.Second):
			t.Fatalf("the %s kill point never came", kp.name)
		}
		if err := <-p.done; err == nil {
			t.Fatalf("killed validator exited cleanly")
		}
		p.done <- nil // for the cleanup
	}

	// A last run finishes the stream and stops gracefully.
	p := startProcess(t, brokers, EnvPrefix+"MAX_POLL_RECORDS=50")
	out := readOutputs(t, brokers, len(events))
	if err := validatortest.Verify(events, out); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Errorf("graceful stop after SIGTERM: %v", err)
	}
	p.done <- nil

	// The kills did leave aborted records behind: a read_uncommitted reader sees them.
	if n := countUncommitted(t, brokers); n <= len(events) {
		t.Errorf("read_uncommitted sees %d output records, want more than the %d committed (aborted transactions)", n, len(events))
	}
}

// countUncommitted counts every record in the valid topics and the DLQ, aborted ones included.
func countUncommitted(t *testing.T, brokers []string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeRegex(),
		kgo.ConsumeTopics(kafka.ValidTopicRegex, "^"+kafka.DefaultDLQTopic+"$"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 && ctx.Err() != nil {
			return n
		}
		n += fs.NumRecords()
	}
}
