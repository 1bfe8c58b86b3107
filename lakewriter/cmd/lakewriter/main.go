// Command lakewriter runs the clickstream lakewriter; configuration comes from LAKEWRITER_* environment variables.
package main

import (
	"os"

	"github.com/clickstream/clickstream/lakewriter"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
	"time"
)

func main() {
	os.Exit(run.Main(run.Spec[lakewriter.Config]{
		Name:      "lakewriter",
		EnvPrefix: lakewriter.EnvPrefix,
		Config:    lakewriter.DefaultConfig(),
		Telemetry: func(c lakewriter.Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c lakewriter.Config) time.Duration { return c.ShutdownTimeout },
		Validate:  lakewriter.Config.Validate,
		New: func(c lakewriter.Config, d run.Deps) (run.Service, error) {
			return lakewriter.New(c, d)
		},
	}, os.Args[1:], os.Stderr))
}
