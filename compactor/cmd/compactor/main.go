// Command compactor runs the clickstream compactor; configuration comes from COMPACTOR_* environment variables.
//
// With -once (or COMPACTOR_ONCE=true) it compacts what is due once and exits, for cron or a
// Kubernetes Job; the exit code is 1 if any partition failed.
package main

import (
	"os"

	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/services/run"
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
	os.Exit(run.Main(compactor.Spec(), args, os.Stderr))
}
