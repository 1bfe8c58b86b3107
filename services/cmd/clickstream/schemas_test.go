package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// checkoutProto is a team's own event type, declared nowhere in the repository.
const checkoutProto = `syntax = "proto3";
package shop.v1;
import "buf/validate/validate.proto";
import "clickstream/v1/options.proto";
message CheckoutStarted {
  option (clickstream.v1.event) = {type: "checkout_started", id_field: "event_id"};
  string event_id = 1 [(buf.validate.field).string.uuid = true];
  int32 items = 2 [(buf.validate.field).int32 = {gt: 0, lte: 100}];
%s}
`

// schemaDir writes the example schemas plus checkout.proto (with extra fields) into a new dir.
func schemaDir(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	src := "../../../schemas/proto/clickstream/events/v1"
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(dir, "clickstream/events/v1", e.Name()), b)
	}
	write(filepath.Join(dir, "shop/v1/checkout.proto"), []byte(strings.Replace(checkoutProto, "%s", extra, 1)))
	return dir
}

// cli runs the all-in-one command against a kfake broker; it returns the exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := mainErrTo(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestSchemasCommands(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	t.Setenv("CLICKSTREAM_KAFKA_BROKERS", strings.Join(cluster.ListenAddrs(), ","))
	t.Setenv("CLICKSTREAM_TOPICS_PARTITIONS", "1")

	if code, out, errOut := cli(t, "topics"); code != 0 || !strings.Contains(out, "schema version 1;") {
		t.Fatalf("topics: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := cli(t, "schemas", "push", "-m", "checkout", schemaDir(t, "")); code != 0 || !strings.Contains(out, "pushed version 2") {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := cli(t, "schemas", "push", schemaDir(t, "")); code != 0 || !strings.Contains(out, "unchanged") {
		t.Fatalf("a second push of the same files: exit %d, %s", code, out)
	}
	// Refused pushes name the file and line, and change nothing.
	for name, tc := range map[string]struct{ extra, want string }{
		"retyped":    {"  int64 coupon = 2;\n", "shop/v1/checkout.proto:"},
		"broken cel": {`  string coupon = 3 [(buf.validate.field).cel = {id: "x", expression: "this.size() <"}];` + "\n", "shop/v1/checkout.proto:9:"},
		"syntax":     {"  string coupon = 3\n", "shop/v1/checkout.proto:"},
	} {
		code, out, errOut := cli(t, "schemas", "push", schemaDir(t, tc.extra))
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr must name %q:\n%s%s", name, code, tc.want, out, errOut)
		}
	}
	if code, out, errOut := cli(t, "schemas", "push", schemaDir(t, "  string coupon = 3;\n")); code != 0 || !strings.Contains(out, "pushed version 3") {
		t.Fatalf("a compatible push after refused ones: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ := cli(t, "schemas", "list")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(out, "checkout_started") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	if code, out, _ := cli(t, "schemas", "diff", "2", "3"); code != 0 || strings.TrimSpace(out) != "+ field checkout_started.coupon string = 3" {
		t.Errorf("diff 2 3: exit %d\n%s", code, out)
	}
	if code, out, _ := cli(t, "schemas", "show", "3"); code != 0 || !strings.Contains(out, "type checkout_started = shop.v1.CheckoutStarted (id event_id)") || !strings.Contains(out, "string coupon = 3") {
		t.Errorf("show 3: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli(t, "schemas", "show", "9"); code == 0 || !strings.Contains(errOut, "no version 9") {
		t.Errorf("show 9: exit %d, %s", code, errOut)
	}

	// dlq replay: a type of the latest version is accepted (nothing to replay on an empty DLQ),
	// an unknown one is refused before anything is read.
	if code, out, errOut := cli(t, "dlq", "replay", "--type", "checkout_started", "--since", "1h"); code != 0 || !strings.Contains(out, "replayed 0 against schema version 3") {
		t.Errorf("dlq replay: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "dlq", "replay", "--type", "nope"); code == 0 || !strings.Contains(errOut, `type "nope" is not in schema version 3`) {
		t.Errorf("dlq replay of an unknown type: exit %d, %s", code, errOut)
	}
	if code, _, errOut := cli(t, "dlq", "replay", "--type", "click", "--since", "yesterday"); code == 0 || !strings.Contains(errOut, "--since") {
		t.Errorf("dlq replay --since yesterday: exit %d, %s", code, errOut)
	}
}
