// Package samples builds example events of every schema: valid ones with every field filled in
// (for tests, benchmarks, the demo and load generators) and invalid ones with the failure each
// must produce (for the validator's tests and the end-to-end tests).
package samples

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/events/v1"
	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
)

// Types are the example event types, in a fixed order.
var Types = []string{"add_to_cart", "app_open", "click", "page_view", "purchase"}

// Event returns the i-th valid event of type typ at time at. Events with different i differ in
// their ids and in which optional and oneof fields are set, so a run of consecutive i covers
// every shape of every field. It panics on an unknown type (a programming error in a test).
func Event(typ string, i int, at time.Time) proto.Message {
	ts := timestamppb.New(at)
	id := uuidFor(typ, i)
	session := uuidFor("session", i/10)
	user := fmt.Sprintf("user-%d", i%97)
	ctx := appContext(i)
	switch typ {
	case "page_view":
		m := &eventsv1.PageView{
			EventId: id, EventTime: ts, UserId: user, SessionId: session,
			Url:        fmt.Sprintf("https://shop.example.com/p/%d?ref=home", i),
			Title:      fmt.Sprintf("Product %d – Shop", i),
			Context:    ctx,
			LoadTimeMs: uint32(100 + i%5000),
		}
		if i%2 == 0 {
			m.Referrer = proto.String("https://www.example.org/search?q=shoes")
			m.Utm = map[string]string{"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": fmt.Sprintf("c%d", i%7)}
		}
		return m
	case "click":
		m := &eventsv1.Click{
			EventId: id, EventTime: ts, UserId: user, SessionId: session,
			ElementId: fmt.Sprintf("button-%d", i%13),
			X:         int32(i % 1920), Y: int32((i * 7) % 1080),
			Button:   eventsv1.Button(1 + i%5),
			IsDouble: i%3 == 0,
			Context:  ctx,
		}
		if i%2 == 1 {
			m.ElementClasses = []string{"btn", "btn-primary", fmt.Sprintf("slot-%d", i%4)}
		}
		return m
	case "add_to_cart":
		return &eventsv1.AddToCart{
			EventId: id, EventTime: ts, UserId: user, SessionId: session,
			Item:     item(i),
			CartSize: int32(1 + i%20),
			Context:  ctx,
		}
	case "purchase":
		items := []*eventsv1.CartItem{item(i), item(i + 1)}
		m := &eventsv1.Purchase{
			EventId: id, EventTime: ts, UserId: user, SessionId: session,
			OrderId:       uuidFor("order", i),
			Email:         fmt.Sprintf("buyer%d@example.com", i%97),
			Items:         items,
			TotalAmount:   items[0].UnitPrice*float64(items[0].Quantity) + items[1].UnitPrice*float64(items[1].Quantity) + 4.99,
			Currency:      "EUR",
			FirstPurchase: i%5 == 0,
			Context:       ctx,
		}
		if i%2 == 0 {
			m.Payment = &eventsv1.Purchase_Card{Card: &eventsv1.Card{Brand: []string{"visa", "mastercard", "amex", "other"}[i%4], Last4: fmt.Sprintf("%04d", i%10000)}}
			m.Coupon = proto.String("WELCOME10")
		} else {
			m.Payment = &eventsv1.Purchase_VoucherCode{VoucherCode: fmt.Sprintf("GIFT%06d", i%1000000)}
		}
		return m
	case "app_open":
		m := &eventsv1.AppOpen{
			EventId: id, EventTime: ts, UserId: user,
			ColdStart:        i%4 == 0,
			LaunchDurationMs: uint32(200 + i%3000),
			InstallSource:    "https://play.example.com/store/apps/details?id=com.example.shop",
			Context:          ctx,
		}
		if i%2 == 0 {
			m.BatteryLevel = proto.Int32(int32(i % 101))
			m.EnabledFeatures = []string{"dark_mode", fmt.Sprintf("exp_%d", i%3)}
		}
		return m
	}
	panic(fmt.Sprintf("samples: unknown event type %q", typ))
}

// Marshal is proto.Marshal that panics; samples are always marshalable.
func Marshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("samples: marshal %T: %v", m, err))
	}
	return b
}

func item(i int) *eventsv1.CartItem {
	return &eventsv1.CartItem{
		Sku:       fmt.Sprintf("SKU-%05d", i%100000),
		Name:      fmt.Sprintf("Running shoe size %d", 36+i%12),
		Quantity:  int32(1 + i%3),
		UnitPrice: float64(1999+i%5000) / 100,
		Currency:  "EUR",
	}
}

func appContext(i int) *eventsv1.AppContext {
	platform := eventsv1.Platform(1 + i%3)
	return &eventsv1.AppContext{
		AppId:      "com.example.shop",
		AppVersion: fmt.Sprintf("4.%d.0", i%20),
		Device: &eventsv1.Device{
			DeviceId:  uuidFor("device", i%50),
			Platform:  platform,
			OsVersion: "17.1",
			Model:     []string{"Pixel 8", "iPhone 15", "Firefox"}[int(platform)-1],
			Locale:    []string{"en-GB", "de", "pt-BR"}[i%3],
		},
	}
}

// uuidFor returns a deterministic, well-formed version 4 UUID for (kind, i).
func uuidFor(kind string, i int) string {
	h := uint64(14695981039346656037)
	for _, c := range []byte(kind) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), i>>36&0xfff, i>>24&0xfff, uint64(i)&0xffffffffffff)
}

// Invalid is an event the validator must refuse, with the refusal it must produce.
type Invalid struct {
	// Name describes the defect.
	Name string
	// Type is the event type sent with it.
	Type string
	// Bytes are the event_bytes.
	Bytes []byte
	// Kind is the expected failure kind.
	Kind clickstreamv1.FailureKind
	// RuleIDs are the expected protovalidate rule ids (VALIDATION_FAILED only), sorted.
	RuleIDs []string
}

// Invalids returns the invalid examples: at least one per schema, plus an unknown type and
// undecodable bytes.
func Invalids(at time.Time) []Invalid {
	const failed = clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED
	mutate := func(typ string, i int, fn func(proto.Message)) []byte {
		m := Event(typ, i, at)
		fn(m)
		return Marshal(m)
	}
	return []Invalid{
		{Name: "page_view bad uuid and url", Type: "page_view", Kind: failed, RuleIDs: []string{"string.uri", "string.uuid"},
			Bytes: mutate("page_view", 1, func(m proto.Message) {
				m.(*eventsv1.PageView).EventId = "not-a-uuid"
				m.(*eventsv1.PageView).Url = "::nope"
			})},
		{Name: "page_view bad utm key, no context", Type: "page_view", Kind: failed, RuleIDs: []string{"required", "string.pattern"},
			Bytes: mutate("page_view", 2, func(m proto.Message) {
				m.(*eventsv1.PageView).Utm = map[string]string{"source": "x"}
				m.(*eventsv1.PageView).Context = nil
			})},
		{Name: "click out of range", Type: "click", Kind: failed, RuleIDs: []string{"enum.defined_only", "int32.gte_lte", "string.min_len"},
			Bytes: mutate("click", 3, func(m proto.Message) {
				m.(*eventsv1.Click).X = -5
				m.(*eventsv1.Click).ElementId = ""
				m.(*eventsv1.Click).Button = 42
			})},
		{Name: "add_to_cart zero quantity, lower-case currency", Type: "add_to_cart", Kind: failed, RuleIDs: []string{"int32.gt_lte", "string.pattern"},
			Bytes: mutate("add_to_cart", 4, func(m proto.Message) {
				m.(*eventsv1.AddToCart).Item.Quantity = 0
				m.(*eventsv1.AddToCart).Item.Currency = "eur"
			})},
		{Name: "purchase bad email, no items, no payment", Type: "purchase", Kind: failed, RuleIDs: []string{"repeated.min_items", "required", "string.email"},
			Bytes: mutate("purchase", 5, func(m proto.Message) {
				p := m.(*eventsv1.Purchase)
				p.Email = "nobody-at-example.com"
				p.Items = nil
				p.Payment = nil
			})},
		{Name: "purchase item in another currency", Type: "purchase", Kind: failed, RuleIDs: []string{"purchase.items_currency"},
			Bytes: mutate("purchase", 6, func(m proto.Message) {
				m.(*eventsv1.Purchase).Items[1].Currency = "USD"
			})},
		{Name: "app_open battery over 100, repeated feature", Type: "app_open", Kind: failed, RuleIDs: []string{"int32.gte_lte", "repeated.unique"},
			Bytes: mutate("app_open", 8, func(m proto.Message) {
				m.(*eventsv1.AppOpen).BatteryLevel = proto.Int32(150)
				m.(*eventsv1.AppOpen).EnabledFeatures = []string{"a", "a"}
			})},
		{Name: "app_open without event time", Type: "app_open", Kind: failed, RuleIDs: []string{"required"},
			Bytes: mutate("app_open", 9, func(m proto.Message) {
				m.(*eventsv1.AppOpen).EventTime = nil
			})},
		{Name: "undecodable bytes", Type: "click", Kind: clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR,
			Bytes: []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{Name: "unknown type", Type: "checkout_started", Kind: clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE,
			Bytes: Marshal(Event("click", 10, at))},
	}
}
