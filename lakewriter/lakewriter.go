// Package lakewriter lands valid events and dead letters as Parquet files in Hive-style partitions and registers them in the Hive Metastore, exactly once.
package lakewriter

import (
	"context"
	"log/slog"

	"github.com/clickstream/clickstream/services/run"
	"github.com/prometheus/client_golang/prometheus"
)

// Lakewriter is one running lakewriter.
type Lakewriter struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
}

// New checks cfg and builds the lakewriter; nothing runs until Run.
func New(cfg Config, deps run.Deps) (*Lakewriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Lakewriter{cfg: cfg, log: deps.Log, reg: deps.Reg}, nil
}

// Run works until ctx is cancelled, then shuts down gracefully.
func (s *Lakewriter) Run(ctx context.Context) error {
	s.log.Info("started")
	<-ctx.Done()
	return nil
}
