package validator

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/validator/validatortest"
)

// Version 1 allows voucher names of up to 3 characters, version 2 relaxes that to 5.
var (
	replayV1 = map[string]string{"voucher": "this.name.size() <= 3", "refund": "this.name != 'bad'"}
	replayV2 = map[string]string{"voucher": "this.name.size() <= 5", "refund": "this.name != 'bad'"}
)

// deadLetters runs a validator on version 1 over vouchers (received one second apart from
// testBase) and one bad refund, and returns the cluster with the outputs written. DLQ:
// vouchers 1, 2, 3 and 5 (3 stays invalid under version 2) and the refund.
func deadLetters(t *testing.T) (*kfake.Cluster, []validatortest.Event) {
	t.Helper()
	c := startKafka(t, contractTopics()...)
	cfg := testConfig(c.ListenAddrs())
	cfg.CreateTopics = true
	in := start(t, cfg, thingVersion(t, 1, replayV1))
	waitFor(t, "the validator ready", func() bool { ok, _ := in.health.Ready(); return ok })
	events := thingEvents("voucher", 0, "ab", "abcd", "abcde", "abcdefgh", "xyz", "abcd")
	events = append(events, thingEvents("refund", len(events), "bad")...)
	produce(t, c, events)
	out := readOutputs(t, c.ListenAddrs(), len(events))
	if len(out.Valid) != 2 || len(out.Dead) != 5 {
		t.Fatalf("version 1: %d valid, %d dead-lettered; want 2 and 5", len(out.Valid), len(out.Dead))
	}
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	return c, events
}

func replayConfig(c *kfake.Cluster) ReplayConfig {
	kc := kafka.DefaultConfig("clickstream-dlq-replay")
	kc.Brokers = c.ListenAddrs()
	return ReplayConfig{Kafka: kc, EventType: "voucher", Topics: kafka.Topics{Partitions: testPartitions, ReplicationFactor: 1}}
}

// readTopic reads every record of topic with the given isolation level until nothing more
// comes for half a second.
func readTopic(t *testing.T, c *kfake.Cluster, topic string, level kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	cl := newClient(t, c, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	var out []*kgo.Record
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 && ctx.Err() != nil {
			return out
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	t.Fatalf("%s: still reading after a minute", topic)
	return nil
}

// TestReplay: dead letters refused by a rule that a later version relaxes are replayed once, with
// the raw record's key, headers and timestamp plus schema, schema_version and
// replayed_from_dlq; still-invalid ones stay; another type's are not touched; the range bounds
// by receive time; a dry run writes nothing; a second run replays nothing.
func TestReplay(t *testing.T) {
	c, events := deadLetters(t)
	v2 := thingVersion(t, 2, replayV2)
	ctx := context.Background()
	cfg := replayConfig(c)
	cfg.Until = testBase.Add(5 * time.Second) // voucher 5 (received at +5s) is left out

	for _, tc := range []struct {
		name   string
		dryRun bool
		until  time.Time
		want   ReplayResult
	}{
		{"dry run", true, cfg.Until, ReplayResult{Scanned: 5, Matched: 3, Replayed: 2, StillInvalid: 1}},
		{"first", false, cfg.Until, ReplayResult{Scanned: 5, Matched: 3, Replayed: 2, StillInvalid: 1}},
		{"again", false, cfg.Until, ReplayResult{Scanned: 5, Matched: 3, StillInvalid: 1, AlreadyReplayed: 2}},
		{"unbounded", false, time.Time{}, ReplayResult{Scanned: 5, Matched: 4, Replayed: 1, StillInvalid: 1, AlreadyReplayed: 2}},
		{"unbounded again", false, time.Time{}, ReplayResult{Scanned: 5, Matched: 4, StillInvalid: 1, AlreadyReplayed: 3}},
	} {
		rc := cfg
		rc.DryRun, rc.Until = tc.dryRun, tc.until
		got, err := Replay(ctx, rc, v2, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
		if tc.dryRun {
			if recs := readTopic(t, c, DefaultLedgerTopic, kgo.ReadUncommitted()); len(recs) != 0 {
				t.Errorf("dry run wrote %d ledger records", len(recs))
			}
		}
	}

	// The valid topic, read as the lakewriter does: version 1's two valid vouchers, then the
	// three replayed ones (events 1, 2 and 5), each once.
	valid := readTopic(t, c, kafka.ValidTopic("voucher"), kgo.ReadCommitted())
	replayed := map[string]*kgo.Record{}
	for _, r := range valid {
		if header(r.Headers, kafka.HeaderReplayedFromDLQ) == "" {
			continue
		}
		id := header(r.Headers, kafka.HeaderReqGUID) + "/" + header(r.Headers, kafka.HeaderEventIndex)
		if replayed[id] != nil {
			t.Errorf("event %s replayed twice", id)
		}
		replayed[id] = r
	}
	if len(valid) != 5 || len(replayed) != 3 {
		t.Fatalf("%d valid records, %d replayed; want 5 and 3", len(valid), len(replayed))
	}
	for _, i := range []int{1, 2, 5} {
		e := events[i]
		r := replayed[e.ID()]
		if r == nil {
			t.Errorf("event %d (%s) not replayed", i, e.ID())
			continue
		}
		if !bytes.Equal(r.Key, e.Record.Key) || !bytes.Equal(r.Value, e.Record.Value) || !r.Timestamp.Equal(e.Record.Timestamp) {
			t.Errorf("event %d: key %q value %q at %v; want %q %q at %v", i, r.Key, r.Value, r.Timestamp,
				e.Record.Key, e.Record.Value, e.Record.Timestamp)
		}
		for _, h := range e.Record.Headers {
			wantHeader(t, r, h.Key, string(h.Value))
		}
		wantHeader(t, r, kafka.HeaderSchema, "test.v1.voucher.Thing")
		wantHeader(t, r, kafka.HeaderSchemaVersion, "2")
		wantHeader(t, r, kafka.HeaderReplayedFromDLQ, "true")
		if n := len(r.Headers); n != len(e.Record.Headers)+3 {
			t.Errorf("event %d: %d headers, want %d: %v", i, n, len(e.Record.Headers)+3, r.Headers)
		}
	}
	ledger := readTopic(t, c, DefaultLedgerTopic, kgo.ReadCommitted())
	if len(ledger) != 3 {
		t.Errorf("%d ledger records, want 3", len(ledger))
	}
}

// TestReplayAbortsAsAWhole: when the commit fails, the replay aborts its transaction: a
// read_committed reader sees neither replayed records nor ledger entries (a read_uncommitted one
// sees the aborted records: they were written in the transaction), and the next replay replays
// everything.
func TestReplayAbortsAsAWhole(t *testing.T) {
	c, _ := deadLetters(t)
	v2 := thingVersion(t, 2, replayV2)
	ctx := context.Background()
	c.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		end := req.(*kmsg.EndTxnRequest)
		if !end.Commit {
			return nil, nil, false
		}
		resp := end.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = kerr.UnknownServerError.Code
		return resp, nil, true
	})
	_, err := Replay(ctx, replayConfig(c), v2, nil)
	if err == nil || !errors.Is(err, kerr.UnknownServerError) {
		t.Fatalf("Replay = %v, want the commit's error", err)
	}
	validTopic := kafka.ValidTopic("voucher")
	if n := len(readTopic(t, c, validTopic, kgo.ReadCommitted())); n != 2 {
		t.Errorf("read_committed: %d valid records after the aborted replay, want version 1's 2", n)
	}
	if n := len(readTopic(t, c, DefaultLedgerTopic, kgo.ReadCommitted())); n != 0 {
		t.Errorf("read_committed: %d ledger records after the aborted replay", n)
	}
	if n := len(readTopic(t, c, validTopic, kgo.ReadUncommitted())); n != 2+3 {
		t.Errorf("read_uncommitted: %d valid records, want 2 + the 3 aborted", n)
	}

	got, err := Replay(ctx, replayConfig(c), v2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ReplayResult{Scanned: 5, Matched: 4, Replayed: 3, StillInvalid: 1}); got != want {
		t.Errorf("after the abort: %+v, want %+v", got, want)
	}
	if n := len(readTopic(t, c, validTopic, kgo.ReadCommitted())); n != 2+3 {
		t.Errorf("read_committed: %d valid records, want 2 + 3 replayed", n)
	}
}
