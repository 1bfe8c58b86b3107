// Package run is the common lifecycle of a service binary: load and check configuration, start
// telemetry, run until a signal, then shut down in order within a deadline.
package run

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Service is what every service's New returns.
type Service interface {
	// Run works until ctx is cancelled, then shuts down gracefully and returns.
	Run(ctx context.Context) error
}

// Deps are what a composition root hands to a service's New.
type Deps struct {
	Log    *slog.Logger
	Reg    *prometheus.Registry
	Health *telemetry.Health
	// Schemas is the schema registry in force, shared by the services of one process (the
	// all-in-one command) or fixed by a test (schemastore.Static). Nil: the service follows its
	// own SCHEMAS_TOPIC (schemastore.Open).
	Schemas *schemastore.Live
}

// Spec describes one service binary for Main.
type Spec[C any] struct {
	Name      string         // "collector"
	EnvPrefix string         // "COLLECTOR_"
	Config    C              // the defaults
	FromEnv   func(*C) error // extra environment handling (aliases); may be nil
	Telemetry func(C) telemetry.Config
	Shutdown  func(C) time.Duration // the graceful-shutdown deadline
	Validate  func(C) error
	New       func(C, Deps) (Service, error)
}

// Main is the body of cmd/<service>/main.go. It returns the process exit code.
func Main[C any](spec Spec[C], args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(spec.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check-config", false, "validate the configuration (defaults + environment) and exit")
	printEnv := fs.Bool("print-env", false, "print every environment variable with its current value and exit")
	healthcheck := fs.Bool("healthcheck", false, "ask the running service's admin server (ADMIN_ADDR) for /readyz; exit 0 when ready (container health checks)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := spec.Config
	err := config.FromEnv(&cfg, spec.EnvPrefix)
	if err == nil && spec.FromEnv != nil {
		err = spec.FromEnv(&cfg)
	}
	if err == nil {
		err = spec.Validate(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", spec.Name, err)
		return 2
	}
	if *printEnv {
		for _, v := range config.Vars(cfg, spec.EnvPrefix) {
			fmt.Fprintf(stderr, "%s=%s\n", v.Name, v.Value)
		}
		return 0
	}
	if *check {
		fmt.Fprintf(stderr, "%s: configuration is valid\n", spec.Name)
		return 0
	}
	if *healthcheck {
		if err := telemetry.Probe(spec.Telemetry(cfg).AdminAddr, 3*time.Second); err != nil {
			fmt.Fprintf(stderr, "%s: not ready: %v\n", spec.Name, err)
			return 1
		}
		return 0
	}
	tc := spec.Telemetry(cfg)
	log := telemetry.NewLogger(tc, stderr, spec.Name)
	reg := telemetry.NewRegistry()
	health := telemetry.NewHealth()
	svc, err := spec.New(cfg, Deps{Log: log, Reg: reg, Health: health})
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Serve(ctx, log, tc.AdminAddr, reg, health, svc, spec.Shutdown(cfg)); err != nil {
		log.Error("stopped with error", "err", err)
		return 1
	}
	return 0
}

// ErrShutdownDeadline is returned when a service did not stop within its deadline.
var ErrShutdownDeadline = errors.New("graceful shutdown exceeded its deadline")

// Serve runs svc and its admin server until ctx is done, then gives svc up to deadline to finish
// its graceful shutdown. Readiness is turned off before the service is told to stop.
func Serve(ctx context.Context, log *slog.Logger, adminAddr string, reg *prometheus.Registry, health *telemetry.Health, svc Service, deadline time.Duration) error {
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	if adminAddr != "" {
		admin, err := telemetry.ListenAdmin(adminAddr, reg, health)
		if err != nil {
			return err
		}
		log.Info("admin server listening", "addr", admin.Addr())
		go func() {
			if err := admin.Serve(adminCtx); err != nil {
				log.Error("admin server failed", "err", err)
			}
		}()
	}
	svcCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(svcCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "deadline", deadline)
	health.Set("shutdown", "shutting down")
	cancel()
	select {
	case err := <-done:
		log.Info("stopped")
		return err
	case <-time.After(deadline):
		return ErrShutdownDeadline
	}
}
