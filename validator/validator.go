// Package validator checks raw events against their protovalidate rules and moves each, exactly once, to its valid topic or the dead-letter queue.
package validator

import (
	"context"
	"log/slog"

	"github.com/clickstream/clickstream/services/run"
	"github.com/prometheus/client_golang/prometheus"
)

// Validator is one running validator.
type Validator struct {
	cfg Config
	log *slog.Logger
	reg prometheus.Registerer
}

// New checks cfg and builds the validator; nothing runs until Run.
func New(cfg Config, deps run.Deps) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Validator{cfg: cfg, log: deps.Log, reg: deps.Reg}, nil
}

// Run works until ctx is cancelled, then shuts down gracefully.
func (s *Validator) Run(ctx context.Context) error {
	s.log.Info("started")
	<-ctx.Done()
	return nil
}
