package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/clickstream/clickstream/services/config"
)

// Unit is one service whose configuration has been loaded and checked, ready to be started by a
// process that runs several services (the all-in-one clickstream command, the e2e tests).
type Unit struct {
	Name     string
	Shutdown time.Duration // the service's graceful-shutdown deadline
	start    func(Deps) (Service, error)
}

// Load reads the spec's configuration from lookup (os.LookupEnv in production; an overlay of
// embedded-mode defaults in the all-in-one command), applies the spec's own environment
// handling, and validates it.
func (s Spec[C]) Load(lookup config.Lookup) (Unit, error) {
	cfg := s.Config
	err := config.FromLookup(&cfg, s.EnvPrefix, lookup)
	if err == nil && s.FromEnv != nil {
		err = s.FromEnv(&cfg)
	}
	if err == nil {
		err = s.Validate(cfg)
	}
	if err != nil {
		return Unit{}, fmt.Errorf("%s: invalid configuration:\n%w", s.Name, err)
	}
	return Unit{
		Name:     s.Name,
		Shutdown: s.Shutdown(cfg),
		start:    func(d Deps) (Service, error) { return s.New(cfg, d) },
	}, nil
}

// NewUnit wraps an already configured service constructor, for tests.
func NewUnit(name string, shutdown time.Duration, start func(Deps) (Service, error)) Unit {
	return Unit{Name: name, Shutdown: shutdown, start: start}
}

// Group runs units in one process as one service: they share the registry and health of deps,
// each logs with service=<name>. They start in order; on shutdown they stop in the same order,
// each after the one before it has stopped, so that the pipeline drains front to back (the
// collector stops taking events before the validator stops, and so on).
type Group struct {
	units []Unit
	deps  Deps
}

// NewGroup prepares the units; nothing runs until Run.
func NewGroup(deps Deps, units ...Unit) *Group { return &Group{units: units, deps: deps} }

// Run starts every unit and runs until ctx is done or a unit fails; then stops them in order.
// A unit that fails stops the whole group: one process is one failure domain.
func (g *Group) Run(ctx context.Context) error {
	type running struct {
		unit   Unit
		cancel context.CancelFunc
		done   chan error
	}
	var started []running
	failed := make(chan string, len(g.units))
	var startErr error
	for _, u := range g.units {
		d := g.deps
		d.Log = g.deps.Log.With(slog.String("unit", u.Name))
		svc, err := u.start(d)
		if err != nil {
			startErr = fmt.Errorf("start %s: %w", u.Name, err)
			break
		}
		uctx, cancel := context.WithCancel(context.Background())
		r := running{unit: u, cancel: cancel, done: make(chan error, 1)}
		go func() {
			err := svc.Run(uctx)
			if uctx.Err() == nil {
				failed <- u.Name
			}
			r.done <- err
		}()
		started = append(started, r)
	}
	if startErr == nil {
		select {
		case <-ctx.Done():
		case name := <-failed:
			g.deps.Log.Error("unit stopped on its own; stopping the others", "unit", name)
		}
	}
	var errs []error
	if startErr != nil {
		errs = append(errs, startErr)
	}
	for _, r := range started {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.unit.Name, err))
			}
		case <-time.After(r.unit.Shutdown):
			errs = append(errs, fmt.Errorf("%s: %w", r.unit.Name, ErrShutdownDeadline))
		}
	}
	return errors.Join(errs...)
}
