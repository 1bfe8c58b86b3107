// Package collector accepts Raccoon-compatible event batches over WebSocket, HTTP and gRPC and acks them once Kafka has every event.
package collector

import (
	"context"
	"log/slog"

	"github.com/clickstream/clickstream/services/run"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector is one running collector.
type Collector struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
}

// New checks cfg and builds the collector; nothing runs until Run.
func New(cfg Config, deps run.Deps) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Collector{cfg: cfg, log: deps.Log, reg: deps.Reg}, nil
}

// Run works until ctx is cancelled, then shuts down gracefully.
func (s *Collector) Run(ctx context.Context) error {
	s.log.Info("started")
	<-ctx.Done()
	return nil
}
