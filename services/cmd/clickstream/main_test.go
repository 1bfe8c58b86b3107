package main

import (
	"strings"
	"testing"
)

func TestDefaultConfigValidates(t *testing.T) {
	t.Parallel()
	if err := defaultConfig().validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	c.Services = []string{"collector", "indexer"}
	c.TopicPattern = "events"
	c.DataDir = ""
	err := c.validate()
	for _, want := range []string{"services", "indexer", "topic_pattern", "data_dir"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate() = %v, want a problem naming %q", err, want)
		}
	}
}

func TestEmbeddedLookup(t *testing.T) {
	t.Setenv("COLLECTOR_KAFKA_BROKERS", "elsewhere:9092")
	t.Setenv("LAKEWRITER_LAKE_URL", "/custom")
	lookup := embeddedLookup("127.0.0.1:1234", "/data/lake")
	cases := map[string]string{
		"COLLECTOR_KAFKA_BROKERS": "127.0.0.1:1234", // forced: the in-process broker wins
		"VALIDATOR_ADMIN_ADDR":    "",               // one admin server for the process
		"LAKEWRITER_LAKE_URL":     "/custom",        // the environment wins over embedded defaults
		"COMPACTOR_LAKE_URL":      "/data/lake",
	}
	for name, want := range cases {
		if got, ok := lookup(name); !ok || got != want {
			t.Errorf("lookup(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
}
