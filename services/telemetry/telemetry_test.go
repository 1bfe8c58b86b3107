package telemetry

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startAdmin serves an admin server on a random loopback port until the test ends.
func startAdmin(t *testing.T, health *Health) string {
	t.Helper()
	admin, err := ListenAdmin("127.0.0.1:0", prometheus.NewRegistry(), health)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = admin.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return admin.Addr()
}

func TestProbe(t *testing.T) {
	health := NewHealth("kafka")
	addr := startAdmin(t, health)
	_, port, _ := net.SplitHostPort(addr)

	err := Probe(addr, time.Second)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "kafka") {
		t.Fatalf("not ready: Probe = %v, want a 503 naming the failing check", err)
	}
	health.Set("kafka", "")
	for _, a := range []string{addr, "0.0.0.0:" + port, ":" + port, "[::]:" + port} {
		if err := Probe(a, time.Second); err != nil {
			t.Errorf("ready: Probe(%q) = %v", a, err)
		}
	}
	if err := Probe("", time.Second); err == nil {
		t.Error("Probe of an empty admin address succeeded")
	}
	if err := Probe("127.0.0.1:1", time.Second); err == nil {
		t.Error("Probe of a closed port succeeded")
	}
}
