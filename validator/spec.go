package validator

import (
	"time"

	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
)

// Spec describes the validator for run.Main (cmd/validator) and for processes that run several services
// (the all-in-one clickstream command, the e2e tests).
func Spec() run.Spec[Config] {
	return run.Spec[Config]{
		Name:      "validator",
		EnvPrefix: EnvPrefix,
		Config:    DefaultConfig(),
		Telemetry: func(c Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c Config) time.Duration { return c.ShutdownTimeout },
		Validate:  Config.Validate,
		New:       func(c Config, d run.Deps) (run.Service, error) { return New(c, d) },
	}
}
