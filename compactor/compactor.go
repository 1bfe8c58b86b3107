// Package compactor rewrites sealed lake partitions into large, deduplicated, sorted files and swaps them in through the Hive Metastore.
package compactor

import (
	"context"
	"log/slog"

	"github.com/clickstream/clickstream/services/run"
	"github.com/prometheus/client_golang/prometheus"
)

// Compactor is one running compactor.
type Compactor struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
}

// New checks cfg and builds the compactor; nothing runs until Run.
func New(cfg Config, deps run.Deps) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Compactor{cfg: cfg, log: deps.Log, reg: deps.Reg}, nil
}

// Run works until ctx is cancelled, then shuts down gracefully.
func (s *Compactor) Run(ctx context.Context) error {
	s.log.Info("started")
	<-ctx.Done()
	return nil
}
