package lakewriter

import (
	"time"

	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/telemetry"
)

// Spec describes the lakewriter for run.Main (cmd/lakewriter) and for processes that run several services
// (the all-in-one clickstream command, the e2e tests).
func Spec() run.Spec[Config] {
	return run.Spec[Config]{
		Name:      "lakewriter",
		EnvPrefix: EnvPrefix,
		Config:    DefaultConfig(),
		Telemetry: func(c Config) telemetry.Config { return c.Telemetry },
		Shutdown:  func(c Config) time.Duration { return c.ShutdownTimeout },
		Validate:  Config.Validate,
		New:       func(c Config, d run.Deps) (run.Service, error) { return New(c, d) },
	}
}
