// Command compactor runs the clickstream compactor; configuration comes from COMPACTOR_* environment variables.
package main

import (
	"os"

	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
	"time"
)

func main() {
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
	}, os.Args[1:], os.Stderr))
}
