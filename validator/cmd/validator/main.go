// Command validator runs the clickstream validator; configuration comes from VALIDATOR_* environment variables.
package main

import (
	"os"

	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/validator"
)

func main() {
	os.Exit(run.Main(validator.Spec(), os.Args[1:], os.Stderr))
}
