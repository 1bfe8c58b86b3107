package config

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Brokers []string `env:"BROKERS"`
}

type sample struct {
	Name    string        `env:"NAME" doc:"a name"`
	Port    int           `env:"PORT"`
	On      bool          `env:"ON"`
	Ratio   float64       `env:"RATIO"`
	Wait    time.Duration `env:"WAIT"`
	Kafka   inner         `envPrefix:"KAFKA_"`
	Ignored string
}

func lookupOf(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFromLookupSetsEveryKind(t *testing.T) {
	var s sample
	err := FromLookup(&s, "X_", lookupOf(map[string]string{
		"X_NAME": "n", "X_PORT": "8080", "X_ON": "true", "X_RATIO": "0.5", "X_WAIT": "2s",
		"X_KAFKA_BROKERS": "a:1,,b:2 ", "X_IGNORED": "nope",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "n" || s.Port != 8080 || !s.On || s.Ratio != 0.5 || s.Wait != 2*time.Second ||
		strings.Join(s.Kafka.Brokers, "|") != "a:1|b:2" || s.Ignored != "" {
		t.Fatalf("got %+v", s)
	}
}

func TestFromLookupReportsAllBadValues(t *testing.T) {
	var s sample
	err := FromLookup(&s, "X_", lookupOf(map[string]string{"X_PORT": "eighty", "X_ON": "maybe"}))
	if err == nil {
		t.Fatal("want error")
	}
	want := "X_PORT=\"eighty\": not an integer\nX_ON=\"maybe\": not a boolean (true or false)"
	if got := err.Error(); got != want && got != "X_ON=\"maybe\": not a boolean (true or false)\nX_PORT=\"eighty\": not an integer" {
		t.Fatalf("got %q", got)
	}
}

func TestVars(t *testing.T) {
	vars := Vars(sample{Port: 1, Wait: time.Second}, "X_")
	if len(vars) != 6 || vars[0].Name != "X_NAME" || vars[0].Doc != "a name" || vars[4].Default != "1s" || vars[5].Name != "X_KAFKA_BROKERS" {
		t.Fatalf("got %+v", vars)
	}
}

func TestProblemsSortedAndJoined(t *testing.T) {
	var p Problems
	if p.Err() != nil {
		t.Fatal("empty problems must be nil")
	}
	p.Addf("b", "second")
	p.Required("a", " ")
	p.OneOf("c", "x", "y", "z")
	p.Merge("sub", (&Problems{errs: []string{"d: inner"}}).Err())
	want := "a: is required\nb: second\nc: must be one of y, z, got \"x\"\nsub.d: inner"
	if got := p.Err().Error(); got != want {
		t.Fatalf("got %q want %q", got, want)
	}
}
