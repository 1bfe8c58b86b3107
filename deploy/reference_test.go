package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the repository's top folder, seen from this package.
const repoRoot = ".."

// setting is one environment variable of the configuration reference.
type setting struct {
	Name    string
	Default string // "" when the reference says (empty); for Raccoon aliases the variable it sets
}

var referenceRow = regexp.MustCompile("^\\| `([A-Z][A-Z0-9_]*)` \\| (.*?) \\|")

// knownSettings reads the generated configuration reference in README.md. That section is tested
// against the config structs (services/cmd/clickstream TestREADMEConfigReference), so an
// environment variable named here is one a binary really reads, with the default it really has.
// Raccoon's variable names, which the collector honours, are included.
func knownSettings(t *testing.T) map[string]setting {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	begin := strings.Index(text, "<!-- BEGIN configuration reference")
	end := strings.Index(text, "<!-- END configuration reference -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no generated configuration reference")
	}
	out := map[string]setting{}
	for _, line := range strings.Split(text[begin:end], "\n") {
		m := referenceRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := strings.Trim(m[2], "`")
		if def == "(empty)" {
			def = ""
		}
		out[m[1]] = setting{Name: m[1], Default: def}
	}
	if len(out) < 50 {
		t.Fatalf("only %d settings found in README.md's configuration reference", len(out))
	}
	return out
}

// defaultPort is the port of a listen-address setting's default, e.g. COLLECTOR_HTTP_ADDR → "8080".
func defaultPort(t *testing.T, settings map[string]setting, name string) string {
	t.Helper()
	s, ok := settings[name]
	if !ok {
		t.Fatalf("%s is not in the configuration reference", name)
	}
	_, port, err := net.SplitHostPort(s.Default)
	if err != nil {
		t.Fatalf("%s default %q is not host:port: %v", name, s.Default, err)
	}
	return port
}

// listenPort is the port of a listen address; a malformed address is an error of the test, and
// -1 then stands for its port.
func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("listen address %q: %v", addr, err)
		return -1
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Errorf("listen address %q: %v", addr, err)
		return -1
	}
	return int(n)
}

func TestKnownSettings(t *testing.T) {
	s := knownSettings(t)
	for _, name := range []string{"COLLECTOR_HTTP_ADDR", "VALIDATOR_DLQ_TOPIC", "LAKEWRITER_LAKE_URL", "COMPACTOR_INTERVAL", "CLICKSTREAM_KAFKA_BROKERS", "SERVER_WEBSOCKET_PORT"} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if p := defaultPort(t, s, "COLLECTOR_HTTP_ADDR"); p != "8080" {
		t.Errorf("collector HTTP port = %s", p)
	}
}
