package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"
)

// TestEmbeddedRun is a smoke test of the load generator against an in-process collector:
// batches are acked and the report carries throughput and latency percentiles.
func TestEmbeddedRun(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		var out bytes.Buffer
		o := options{conns: 2, batch: 10, inflight: 2, duration: 500 * time.Millisecond, warmup: 200 * time.Millisecond,
			header: "X-User-ID", embedded: true, eventsPool: 50, asJSON: asJSON}
		if err := run0(context.Background(), o, &out); err != nil {
			t.Fatal(err)
		}
		report := out.String()
		if !regexp.MustCompile(`acked: [1-9][0-9]* events`).MatchString(report) || !regexp.MustCompile(`ack latency: p50 `).MatchString(report) {
			t.Fatalf("report without acks or latency:\n%s", report)
		}
		if regexp.MustCompile(`errors:`).MatchString(report) {
			t.Fatalf("errors reported:\n%s", report)
		}
	}
}

func TestIdleRun(t *testing.T) {
	var out bytes.Buffer
	o := options{idle: 20, warmup: 100 * time.Millisecond, header: "X-User-ID", embedded: true}
	if err := run0(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`20 idle connections .* KiB per connection`).MatchString(out.String()) {
		t.Fatalf("report: %s", out.String())
	}
}
