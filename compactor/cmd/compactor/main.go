// Command compactor runs the clickstream compactor; configuration comes from COMPACTOR_* environment variables.
//
// With -once (or COMPACTOR_ONCE=true) it compacts what is due once and exits, for cron or a
// Kubernetes Job; the exit code is 1 if any partition failed.
package main

import (
	"os"
	"time"

	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
)

func main() {
	var args []string
	for _, a := range os.Args[1:] {
		if a == "-once" || a == "--once" {
			// run.Main owns the flags; -once is the environment setting under another name.
			_ = os.Setenv(compactor.EnvPrefix+"ONCE", "true")
			continue
		}
		args = append(args, a)
	}
	os.Exit(run.Main(run.Spec[compactor.Config]{
		Name:      "compactor",
		EnvPrefix: compactor.EnvPrefix,
		Config:    compactor.DefaultConfig(),
		Telemetry: func(c compactor.Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c compactor.Config) time.Duration { return c.ShutdownTimeout },
		Validate:  compactor.Config.Validate,
		New: func(c compactor.Config, d run.Deps) (run.Service, error) {
			return compactor.New(c, d)
		},
	}, args, os.Stderr))
}
