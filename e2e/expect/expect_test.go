package expect

import (
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/events/v1"
	"github.com/clickstream/clickstream/schemas/samples"
)

var at = time.Date(2026, 11, 22, 13, 4, 5, 600_000_000, time.UTC)

func TestRowMapsEveryKind(t *testing.T) {
	t.Parallel()
	p := samples.Event("purchase", 2, at).(*eventsv1.Purchase)
	row := Row(p)
	if row["event_time"] != at {
		t.Errorf("event_time = %v", row["event_time"])
	}
	if row["coupon"] != "WELCOME10" {
		t.Errorf("coupon = %v", row["coupon"])
	}
	if row["voucher_code"] != nil {
		t.Errorf("unset oneof member = %v, want nil", row["voucher_code"])
	}
	card := row["card"].(map[string]any)
	if card["last4"] != "0002" {
		t.Errorf("card = %v", card)
	}
	items := row["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["quantity"] != float64(p.Items[0].Quantity) {
		t.Errorf("items = %v", items)
	}
	device := row["context"].(map[string]any)["device"].(map[string]any)
	if device["platform"] != p.Context.Device.Platform.String() {
		t.Errorf("platform = %v", device["platform"])
	}
	pv := Row(samples.Event("page_view", 2, at))
	if pv["utm"].(map[string]any)["utm_medium"] != "email" {
		t.Errorf("utm = %v", pv["utm"])
	}
	if Row(samples.Event("page_view", 1, at))["referrer"] != nil {
		t.Error("unset optional is not nil")
	}
}

func TestDiff(t *testing.T) {
	t.Parallel()
	want := Row(samples.Event("click", 1, at))
	got := Normalize(map[string]any(want), nil)
	if d := Diff(want, got, time.Millisecond); d != "" {
		t.Fatalf("Diff of equal rows = %s", d)
	}
	changed := Row(samples.Event("click", 1, at))
	changed["x"] = float64(-1)
	changed["context"].(map[string]any)["app_id"] = "other"
	d := Diff(want, changed, time.Millisecond)
	if !strings.Contains(d, ".x: want") || !strings.Contains(d, ".context.app_id: want") {
		t.Fatalf("Diff = %s", d)
	}
}
