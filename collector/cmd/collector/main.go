// Command collector runs the clickstream collector; configuration comes from COLLECTOR_* environment variables.
package main

import (
	"os"

	"github.com/clickstream/clickstream/collector"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
	"time"
)

func main() {
	os.Exit(run.Main(run.Spec[collector.Config]{
		Name:      "collector",
		EnvPrefix: collector.EnvPrefix,
		Config:    collector.DefaultConfig(),
		Telemetry: func(c collector.Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c collector.Config) time.Duration { return c.ShutdownTimeout },
		Validate:  collector.Config.Validate,
		New: func(c collector.Config, d run.Deps) (run.Service, error) {
			return collector.New(c, d)
		},
	}, os.Args[1:], os.Stderr))
}
