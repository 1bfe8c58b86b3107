package collector

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
)

// benchEvents is the batch every benchmark sends: 100 sample events over every type
// (≈ 300 B each), as the perf notes' method prescribes.
const benchEvents = 100

func benchBatch() *pb.SendEventRequest {
	types := make([]string, benchEvents)
	for i := range types {
		types[i] = samples.Types[i%len(samples.Types)]
	}
	return batch("bench", types...)
}

// benchCollector runs a collector with production defaults against a kfake broker that
// discards what it is sent (so memory does not grow with b.N).
func benchCollector(b *testing.B) *harness {
	return startOn(b, newCluster(b, kfake.BlackholeProduce()), func(c *Config) {
		c.Producer = DefaultConfig().Producer
		c.Topics.Partitions = 6
		c.RateLimit = 0
	})
}

// BenchmarkIngest is the per-batch path of the collector: decode the frame, check it, build the
// records, produce them to kfake (acks=all, idempotent, zstd), wait for Kafka's ack, render the
// ack. Batches run concurrently, as many connections would send them. Compare events/s with
// BenchmarkRawProduce, the same records produced by franz-go alone with the same options.
func BenchmarkIngest(b *testing.B) {
	req := benchBatch()
	for _, form := range []struct {
		name string
		body []byte
		json bool
	}{
		{"proto", mustMarshal(req), false},
		{"json", raccoonJSON(req, false), true},
	} {
		b.Run(form.name, func(b *testing.B) {
			h := benchCollector(b)
			id := identity{id: "bench-user", group: "bench"}
			b.SetBytes(int64(len(form.body)))
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb_ *testing.PB) {
				for pb_.Next() {
					received := time.Now()
					decode := decodeProto
					if form.json {
						decode = decodeJSON
					}
					r, err := decode(form.body)
					if err != nil {
						b.Error(err)
						return
					}
					o := h.c.submitAndWait(context.Background(), id, r, received)
					if !o.success() {
						b.Errorf("ack: %+v", o)
						return
					}
					_ = encodeResponse(response(r.GetReqGuid(), o), form.json)
				}
			})
			b.ReportMetric(float64(b.N*benchEvents)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRawProduce is the baseline of BenchmarkIngest: the same 100 records per batch, with
// the same headers and producer options, produced by franz-go straight to kfake and waited for.
func BenchmarkRawProduce(b *testing.B) {
	cluster := newCluster(b, kfake.BlackholeProduce())
	h := startOn(b, cluster, func(c *Config) { // only to create the topics
		c.Producer = DefaultConfig().Producer
		c.Topics.Partitions = 6
	})
	cl, err := kgo.NewClient(append(h.c.producerOpts(), kgo.SeedBrokers(cluster.ListenAddrs()...))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	req := benchBatch()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb_ *testing.PB) {
		var wg sync.WaitGroup
		for pb_.Next() {
			now := []byte(time.Now().UTC().Format(time.RFC3339Nano))
			wg.Add(benchEvents)
			for i, e := range req.GetEvents() {
				r := &kgo.Record{
					Topic: kafka.RawTopic(kafka.DefaultRawTopicPattern, e.GetType()), Key: []byte("bench-user"), Value: e.GetEventBytes(),
					Headers: []kgo.RecordHeader{
						{Key: kafka.HeaderReqGUID, Value: []byte("bench")}, {Key: kafka.HeaderEventIndex, Value: []byte(strconv.Itoa(i))},
						{Key: kafka.HeaderConnID, Value: []byte("bench-user")}, {Key: kafka.HeaderConnGroup, Value: []byte("bench")},
						{Key: kafka.HeaderSentTime, Value: now}, {Key: kafka.HeaderReceivedAt, Value: now},
						{Key: kafka.HeaderEventType, Value: []byte(e.GetType())},
					},
				}
				cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
					wg.Done()
				})
			}
			wg.Wait()
		}
	})
	b.ReportMetric(float64(b.N*benchEvents)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecode is the decoding of one 100-event request alone.
func BenchmarkDecode(b *testing.B) {
	req := benchBatch()
	for _, form := range []struct {
		name   string
		body   []byte
		decode func([]byte) (*pb.SendEventRequest, error)
	}{
		{"proto", mustMarshal(req), decodeProto},
		{"json_base64", raccoonJSON(req, false), decodeJSON},
		{"json_byte_arrays", raccoonJSON(req, true), decodeJSON},
		{"json_canonical", mustProtoJSON(req), decodeJSON},
	} {
		b.Run(form.name, func(b *testing.B) {
			b.SetBytes(int64(len(form.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := form.decode(form.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
