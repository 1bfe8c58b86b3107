package lakewriter

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/run"
)

// BenchmarkWriteRows measures the per-record cost of the write path without Kafka or a file
// system: decode the protobuf value, convert it to a Parquet row and write it into a zstd
// Parquet file (row groups and footer included). bytes/op is the protobuf input.
//
//	go test -run '^$' -bench WriteRows -benchmem ./lakewriter/
func BenchmarkWriteRows(b *testing.B) {
	at := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	for _, typ := range samples.Types {
		b.Run(typ, func(b *testing.B) {
			et, _ := registry.Default().Lookup(typ)
			s, err := NewSchema(typ, et.Message)
			if err != nil {
				b.Fatal(err)
			}
			values := make([][]byte, 1000)
			size := 0
			for i := range values {
				values[i] = samples.Marshal(samples.Event(typ, i, at))
				size += len(values[i])
			}
			b.SetBytes(int64(size / len(values)))
			b.ReportAllocs()
			f := newParquetFile(io.Discard, s, 1<<20, 64<<20)
			sys := sysValues{receivedAt: at, reqGUID: "0a8c4b3e-7f3c-4e51-9d2b-2f3c1d9a8e11", hasIndex: true, connGroup: "web", partition: 1}
			b.ResetTimer()
			for i := range b.N {
				msg := s.newMessage()
				if err := proto.Unmarshal(values[i%len(values)], msg); err != nil {
					b.Fatal(err)
				}
				sys.offset, sys.eventIndex = int64(i), int32(i%50)
				if err := f.write(msg.ProtoReflect(), sys); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.close(lake.DataFile{Topic: "t", LastOffset: int64(b.N)}, s.Message.FullName()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkLakewriter measures records per second through the whole service on kfake and a
// local directory: consume (read_committed), decode, write Parquet, commit on size. The group
// join happens before the timer starts.
//
//	go test -run '^$' -bench Lakewriter -benchtime 200000x ./lakewriter/
func BenchmarkLakewriter(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, allTopics()...))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	at := time.Now().UTC()
	topic := kafka.ValidTopic("page_view")
	produce := func(n int) {
		for i := range n {
			m := samples.Event("page_view", i, at)
			cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: samples.Marshal(m), Timestamp: at,
				Headers: headers(i, at, "page_view", "clickstream.events.v1.PageView")}, nil)
		}
		if err := cl.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Telemetry.AdminAddr = ""
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Lake.URL = b.TempDir()
	cfg.FileSize = 32 << 20
	lw, err := New(cfg, run.Deps{Reg: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lw.Run(ctx) }()
	consumed := func() float64 {
		return testutil.ToFloat64(lw.m.consumed.WithLabelValues("page_view"))
	}
	produce(1)
	for consumed() < 1 {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	produce(b.N)
	for consumed() < float64(b.N+1) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
