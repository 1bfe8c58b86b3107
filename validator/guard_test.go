package validator

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
)

func TestGuard(t *testing.T) {
	t.Parallel()
	for _, typ := range samples.Types {
		et, _ := registry.Default().Lookup(typ)
		g := newGuard(et.Message)
		for i := range 20 {
			if b := samples.Marshal(samples.Event(typ, i, testAt)); !g.oneofSafe(b) {
				t.Errorf("%s event %d kept from hyperpb", typ, i)
			}
		}
	}
	et, _ := registry.Default().Lookup("purchase")
	g := newGuard(et.Message)
	card := protowire.AppendTag(nil, 10, protowire.BytesType) // payment.card
	card = protowire.AppendBytes(card, []byte{0x0a, 0x04, 'v', 'i', 's', 'a'})
	voucher := protowire.AppendTag(nil, 11, protowire.BytesType) // payment.voucher_code
	voucher = protowire.AppendString(voucher, "GIFT000001")
	item := protowire.AppendTag(nil, 7, protowire.BytesType) // items, a message without oneofs
	item = protowire.AppendBytes(item, []byte{0x0a, 0x04, 'S', 'K', 'U', '1'})
	tests := []struct {
		name string
		b    []byte
		safe bool
	}{
		{"one member", card, true},
		{"repeated message field", append(append([]byte(nil), item...), item...), true},
		{"string then message member", append(append([]byte(nil), voucher...), card...), false},
		{"same member twice", append(append([]byte(nil), card...), card...), false},
		{"truncated", card[:len(card)-1], false},
		{"bad nested bytes", append(protowire.AppendTag(nil, 7, protowire.BytesType), 0x02, 0x0a, 0x09), false},
		{"unknown field", protowire.AppendVarint(protowire.AppendTag(nil, 1000, protowire.VarintType), 7), true},
	}
	for _, tt := range tests {
		if got := g.oneofSafe(tt.b); got != tt.safe {
			t.Errorf("%s: oneofSafe = %v, want %v", tt.name, got, tt.safe)
		}
	}
}
