// Command collector runs the clickstream collector; configuration comes from COLLECTOR_* environment
// variables, and from Raccoon's variable names where they map (see collector.RaccoonEnv).
package main

import (
	"os"

	"github.com/clickstream/clickstream/collector"
	"github.com/clickstream/clickstream/services/run"
)

func main() {
	os.Exit(run.Main(collector.Spec(), os.Args[1:], os.Stderr))
}
