package kafka

import (
	"strings"
	"testing"
	"time"
)

func TestProducerValidate(t *testing.T) {
	t.Parallel()
	ok := Producer{Compression: "zstd", Linger: time.Millisecond, BatchMaxBytes: 1 << 20}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if n := len(ok.Opts()); n != 4 {
		t.Errorf("Opts() has %d options, want 4", n)
	}
	bad := Producer{Compression: "gzip", Linger: -time.Second}
	err := bad.Validate()
	for _, want := range []string{`compression: must be one of zstd, lz4, snappy, none, got "gzip"`, "linger: must not be negative, got -1s", "batch_max_bytes: must be positive, got 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}
