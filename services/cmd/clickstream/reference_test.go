package main

import (
	"os"
	"strings"
	"testing"

	"github.com/clickstream/clickstream/collector"
	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/lakewriter"
	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/validator"
)

// TestREADMEConfigReference fails when the configuration reference committed in README.md is not
// what the config structs generate: a setting was added, renamed, re-documented or its default
// changed without `make docs`.
func TestREADMEConfigReference(t *testing.T) {
	const readme = "../../../README.md"
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	want, err := spliceReference(string(raw), configReference())
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != want {
		t.Fatalf("the configuration reference in README.md is stale: run `make docs` and commit README.md")
	}
}

// TestEverySettingDocumented keeps the reference useful: a variable without a doc tag would be a
// row without meaning.
func TestEverySettingDocumented(t *testing.T) {
	sets := map[string][]config.Var{
		"collector":   config.Vars(collector.DefaultConfig(), collector.EnvPrefix),
		"validator":   config.Vars(validator.DefaultConfig(), validator.EnvPrefix),
		"lakewriter":  config.Vars(lakewriter.DefaultConfig(), lakewriter.EnvPrefix),
		"compactor":   config.Vars(compactor.DefaultConfig(), compactor.EnvPrefix),
		"clickstream": config.Vars(defaultConfig(), envPrefix),
	}
	for name, vars := range sets {
		if len(vars) < 5 {
			t.Errorf("%s: only %d variables found", name, len(vars))
		}
		for _, v := range vars {
			if strings.TrimSpace(v.Doc) == "" {
				t.Errorf("%s: %s has no doc tag", name, v.Name)
			}
		}
	}
	ref := configReference()
	for _, r := range collector.RaccoonVariables() {
		if !strings.Contains(ref, "`"+r.Raccoon+"`") {
			t.Errorf("Raccoon variable %s missing from the reference", r.Raccoon)
		}
	}
}

func TestSpliceReference(t *testing.T) {
	in := "intro\n" + referenceBegin + "\nold\n" + referenceEnd + "\nrest\n"
	out, err := spliceReference(in, "new")
	if err != nil {
		t.Fatal(err)
	}
	if want := "intro\n" + referenceBegin + "\nnew\n" + referenceEnd + "\nrest\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	if _, err := spliceReference("no markers", "x"); err == nil {
		t.Fatal("a README without markers was accepted")
	}
}
