package collector

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// budget bounds the bytes of batches handed to Kafka and not yet settled. A batch takes its
// cost before it is produced and gives it back when the last of its records is settled (acked
// or failed by the client), not when its ack is written: so memory stays bounded even when acks
// time out while Kafka still holds the records.
type budget struct {
	max   int64
	gauge prometheus.Gauge

	mu    sync.Mutex
	used  int64
	peak  int64         // highest used, for tests
	freed chan struct{} // closed and replaced on every release: wakes the waiters
}

func newBudget(max int64, gauge prometheus.Gauge) *budget {
	return &budget{max: max, gauge: gauge, freed: make(chan struct{})}
}

// acquire takes n bytes, waiting up to wait for room. A batch larger than the whole budget
// gets in only when nothing else is in flight. It reports false on timeout or when stop closes.
func (b *budget) acquire(n int64, wait time.Duration, stop <-chan struct{}) bool {
	var timeout <-chan time.Time
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.peak = max(b.peak, b.used)
			b.gauge.Set(float64(b.used))
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-freed:
		case <-timeout:
			return false
		case <-stop:
			return false
		}
	}
}

// release gives n bytes back and wakes every waiter.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.gauge.Set(float64(b.used))
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// stats returns the bytes in use and the highest use so far.
func (b *budget) stats() (used, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.peak
}
