package kafka

import (
	"regexp"
	"testing"
)

func TestTopicNames(t *testing.T) {
	t.Parallel()
	if got := RawTopic(DefaultRawTopicPattern, "page_view"); got != "clickstream-page_view-log" {
		t.Errorf("RawTopic = %q", got)
	}
	if got := RawTopic("events", "page_view"); got != "events" {
		t.Errorf("RawTopic without %%s = %q", got)
	}
	if got := RawTopic("a-%s-%s", "x"); got != "a-x-%s" {
		t.Errorf("RawTopic replaces only the first %%s: %q", got)
	}
	if got := ValidTopic("click"); got != "clickstream-click-valid" {
		t.Errorf("ValidTopic = %q", got)
	}
	raw := regexp.MustCompile(RawTopicRegex("my.app-%s-log"))
	if m := raw.FindStringSubmatch("my.app-purchase-log"); m == nil || m[1] != "purchase" {
		t.Errorf("raw regex match = %v", m)
	}
	for _, no := range []string{"myxapp-purchase-log", "my.app-purchase-valid", "clickstream-dlq"} {
		if raw.MatchString(no) {
			t.Errorf("raw regex matches %q", no)
		}
	}
	valid := regexp.MustCompile(ValidTopicRegex)
	if m := valid.FindStringSubmatch("clickstream-add_to_cart-valid"); m == nil || m[1] != "add_to_cart" {
		t.Errorf("valid regex match = %v", m)
	}
	if valid.MatchString("clickstream-dlq") || valid.MatchString("clickstream-x-log") {
		t.Error("valid regex matches a non-valid topic")
	}
}

func TestContractTopics(t *testing.T) {
	t.Parallel()
	got := ContractTopics(DefaultRawTopicPattern, "", []string{"click"})
	want := []string{"clickstream-unknown-log", "clickstream-dlq", "clickstream-click-log", "clickstream-click-valid"}
	if len(got) != len(want) {
		t.Fatalf("ContractTopics = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ContractTopics = %v, want %v", got, want)
		}
	}
}
