package collector

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// TestShutdownUnderLoadLosesNoAckedEvent: several clients keep sending while the collector is
// shut down (what SIGTERM does through run.Serve). Every batch acked SUCCESS before the
// connections closed must be in Kafka with all its events; batches that got no ack or an error
// ack may be missing, but never a successful one.
func TestShutdownUnderLoadLosesNoAckedEvent(t *testing.T) {
	h := start(t, nil)
	const clients, eventsPerBatch = 4, 3
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for c := range clients {
		conn := dial(t, h.wsURL(), fmt.Sprintf("load-%d", c), "")
		wg.Add(2)
		go func() { // writer: sends until the connection is closed under it
			defer wg.Done()
			for i := 0; ; i++ {
				raw, _ := proto.Marshal(batch(fmt.Sprintf("c%d-b%d", c, i), "click", "page_view", "purchase"))
				if err := conn.WriteMessage(websocket.BinaryMessage, raw); err != nil {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		go func() { // reader: records every SUCCESS ack until the close
			defer wg.Done()
			for {
				_, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				var resp pb.SendEventResponse
				if proto.Unmarshal(msg, &resp) == nil && resp.GetStatus() == pb.Status_STATUS_SUCCESS {
					mu.Lock()
					acked = append(acked, resp.GetData()["req_guid"])
					mu.Unlock()
				}
			}
		}()
	}
	eventually(t, "load flowing", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100
	})
	h.cancel() // mid-load
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		h.done = nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d batches acked SUCCESS before the shutdown closed the connections", len(acked))
	for _, guid := range acked {
		h.recordsFor(guid, eventsPerBatch)
	}
}
