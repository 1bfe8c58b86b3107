// Command lakewriter runs the clickstream lakewriter; configuration comes from LAKEWRITER_* environment variables.
package main

import (
	"os"

	"github.com/clickstream/clickstream/lakewriter"
	"github.com/clickstream/clickstream/services/run"
)

func main() {
	os.Exit(run.Main(lakewriter.Spec(), os.Args[1:], os.Stderr))
}
