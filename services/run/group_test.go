package run

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickstream/clickstream/services/telemetry"
)

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

type fakeService struct {
	name string
	rec  *recorder
	fail error // returned at once, without waiting for ctx
}

func (f fakeService) Run(ctx context.Context) error {
	f.rec.add("run " + f.name)
	if f.fail != nil {
		return f.fail
	}
	<-ctx.Done()
	f.rec.add("stop " + f.name)
	return nil
}

func testDeps() Deps {
	return Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Reg: telemetry.NewRegistry(), Health: telemetry.NewHealth()}
}

func unit(name string, rec *recorder, fail error) Unit {
	return NewUnit(name, 5*time.Second, func(Deps) (Service, error) { return fakeService{name, rec, fail}, nil })
}

func TestGroupStopsInStartOrder(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	g := NewGroup(testDeps(), unit("collector", rec, nil), unit("validator", rec, nil), unit("lakewriter", rec, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	for {
		rec.mu.Lock()
		n := len(rec.events)
		rec.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	stops := slices.DeleteFunc(slices.Clone(rec.events), func(s string) bool { return strings.HasPrefix(s, "run") })
	if want := []string{"stop collector", "stop validator", "stop lakewriter"}; !slices.Equal(stops, want) {
		t.Fatalf("stop order %v, want %v", stops, want)
	}
}

func TestGroupStopsWhenAUnitFails(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	boom := errors.New("boom")
	g := NewGroup(testDeps(), unit("a", rec, nil), unit("b", rec, boom))
	err := g.Run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "b: boom") {
		t.Fatalf("Run = %v, want b: boom", err)
	}
}

func TestGroupStartFailure(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	bad := NewUnit("bad", time.Second, func(Deps) (Service, error) { return nil, errors.New("no kafka") })
	err := NewGroup(testDeps(), unit("a", rec, nil), bad).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "start bad: no kafka") {
		t.Fatalf("Run = %v", err)
	}
}

func TestSpecLoadReportsProblems(t *testing.T) {
	t.Parallel()
	type cfg struct {
		N int `env:"N"`
	}
	spec := Spec[cfg]{
		Name: "svc", EnvPrefix: "SVC_", Config: cfg{N: 1},
		Shutdown: func(cfg) time.Duration { return time.Second },
		Validate: func(c cfg) error {
			if c.N <= 0 {
				return errors.New("n: must be positive")
			}
			return nil
		},
		New: func(cfg, Deps) (Service, error) { return nil, nil },
	}
	lookup := func(k string) (string, bool) {
		if k == "SVC_N" {
			return "-3", true
		}
		return "", false
	}
	if _, err := spec.Load(lookup); err == nil || !strings.Contains(err.Error(), "n: must be positive") {
		t.Fatalf("Load = %v", err)
	}
	u, err := spec.Load(func(string) (string, bool) { return "", false })
	if err != nil || u.Name != "svc" || u.Shutdown != time.Second {
		t.Fatalf("Load = %+v, %v", u, err)
	}
}
