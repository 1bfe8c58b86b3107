// Command validator runs the clickstream validator; configuration comes from VALIDATOR_* environment variables.
package main

import (
	"os"
	"time"

	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/clickstream/clickstream/validator"
)

func main() {
	os.Exit(run.Main(run.Spec[validator.Config]{
		Name:      "validator",
		EnvPrefix: validator.EnvPrefix,
		Config:    validator.DefaultConfig(),
		Telemetry: func(c validator.Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c validator.Config) time.Duration { return c.ShutdownTimeout },
		Validate:  validator.Config.Validate,
		New: func(c validator.Config, d run.Deps) (run.Service, error) {
			return validator.New(c, d)
		},
	}, os.Args[1:], os.Stderr))
}
