// Package telemetry gives every service the same logging, metrics and admin HTTP endpoints:
// /metrics (Prometheus, from the registry the service was given), /healthz (the process is alive)
// and /readyz (the service can do its work; turned off first on shutdown).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is the admin endpoint and logging of one service.
type Config struct {
	// AdminAddr is where /metrics, /healthz and /readyz are served. Empty disables the server.
	AdminAddr string `env:"ADMIN_ADDR" doc:"admin HTTP listen address for /metrics, /healthz, /readyz (empty: off)"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" doc:"log level: debug, info, warn, error"`
	// LogFormat is text (human) or json (log shippers).
	LogFormat string `env:"LOG_FORMAT" doc:"log format: text or json"`
}

// DefaultConfig serves admin endpoints on addr and logs text at info.
func DefaultConfig(addr string) Config {
	return Config{AdminAddr: addr, LogLevel: "info", LogFormat: "text"}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	p.OneOf("log_level", c.LogLevel, "debug", "info", "warn", "error")
	p.OneOf("log_format", c.LogFormat, "text", "json")
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			p.Addf("admin_addr", "not a host:port address: %q", c.AdminAddr)
		}
	}
	return p.Err()
}

// NewLogger builds the service's slog logger; every line carries service=<name>.
func NewLogger(c Config, w io.Writer, service string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With("service", service)
}

// NewRegistry returns a fresh registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Health is the readiness state of a service: ready only when every named check is ready.
// Checks start not ready; a service marks them as its parts come up, and clears them on shutdown.
type Health struct {
	mu     sync.Mutex
	checks map[string]string // name -> "" when ready, else the reason it is not
}

// NewHealth returns a Health with the named checks, all not ready yet.
func NewHealth(names ...string) *Health {
	h := &Health{checks: map[string]string{}}
	for _, n := range names {
		h.checks[n] = "starting"
	}
	return h
}

// Set marks check name as ready (reason == "") or not ready with a reason.
func (h *Health) Set(name, reason string) {
	h.mu.Lock()
	h.checks[name] = reason
	h.mu.Unlock()
}

// Ready reports whether all checks are ready, and the reasons of those that are not.
func (h *Health) Ready() (bool, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var bad []string
	for n, r := range h.checks {
		if r != "" {
			bad = append(bad, n+": "+r)
		}
	}
	return len(bad) == 0, bad
}

// Admin is the admin HTTP server of one service.
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// ListenAdmin binds the admin server; use Addr for the bound address (port 0 picks one).
func ListenAdmin(addr string, reg *prometheus.Registry, health *Health) (*Admin, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reasons := health.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n"+strings.Join(reasons, "\n")+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return &Admin{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}, nil
}

// Addr is the bound address.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// Serve serves until ctx is done, then shuts down within a second.
func (a *Admin) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.srv.Serve(a.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = a.srv.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// Probe asks the admin server at adminAddr for /readyz and returns nil when it answers 200. It is
// what `<service> -healthcheck` runs inside a container image without a shell or curl (Docker's
// HEALTHCHECK, compose's healthcheck). A wildcard listen address (0.0.0.0:9100, :9100, [::]:9100)
// is probed on loopback.
func Probe(adminAddr string, timeout time.Duration) error {
	if adminAddr == "" {
		return errors.New("the admin server is off (ADMIN_ADDR is empty): nothing to probe")
	}
	host, port, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", adminAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: timeout}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
