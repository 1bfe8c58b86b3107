package lakewriter

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/events/v1"
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
func BenchmarkWriteRows(b *testing.B) { benchWriteRows(b, true) }

// BenchmarkWriteRowsReflective is the same through the reflective path (proto.Unmarshal and
// protoreflect), which the wire path replaced as the hot path.
func BenchmarkWriteRowsReflective(b *testing.B) { benchWriteRows(b, false) }

func benchWriteRows(b *testing.B, wire bool) {
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
			rb := s.newRowBuilder()
			sys := sysValues{receivedAt: at, reqGUID: "0a8c4b3e-7f3c-4e51-9d2b-2f3c1d9a8e11", hasIndex: true, connGroup: "web", partition: 1}
			b.ResetTimer()
			for i := range b.N {
				data := values[i%len(values)]
				sys.offset, sys.eventIndex = int64(i), int32(i%50)
				var row parquet.Row
				if wire { // what the lakewriter does: the wire path, the reflective one as fallback
					var err error
					if row, err = rb.rowOf(data, sys); err != nil {
						b.Fatal(err)
					}
				} else {
					msg := s.newMessage()
					if err := proto.Unmarshal(data, msg); err != nil {
						b.Fatal(err)
					}
					row = rb.build(msg.ProtoReflect(), sys)
				}
				if err := f.writeRow(row); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.close(lake.DataFile{Topic: "t", LastOffset: int64(b.N)}, s); err != nil {
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

// clickDevice, clickContext and clickRow mirror the lakewriter's Parquet schema for click
// (testdata/schema/click.golden) as plain Go structs for parquet-go's GenericWriter.
type clickDevice struct {
	DeviceID  string `parquet:"device_id"`
	Platform  string `parquet:"platform"`
	OSVersion string `parquet:"os_version"`
	Model     string `parquet:"model"`
	Locale    string `parquet:"locale"`
}

type clickContext struct {
	AppID      string       `parquet:"app_id"`
	AppVersion string       `parquet:"app_version"`
	Device     *clickDevice `parquet:"device,optional"`
}

type clickRow struct {
	EventID        string        `parquet:"event_id"`
	EventTime      *time.Time    `parquet:"event_time,optional,timestamp(microsecond)"`
	UserID         string        `parquet:"user_id"`
	SessionID      string        `parquet:"session_id"`
	ElementID      string        `parquet:"element_id"`
	ElementClasses []string      `parquet:"element_classes,list"`
	X              int32         `parquet:"x"`
	Y              int32         `parquet:"y"`
	Button         string        `parquet:"button"`
	IsDouble       bool          `parquet:"is_double"`
	Context        *clickContext `parquet:"context,optional"`
	ReceivedAt     time.Time     `parquet:"_received_at,timestamp(microsecond)"`
	ReqGUID        string        `parquet:"_req_guid"`
	EventIndex     *int32        `parquet:"_event_index,optional"`
	ConnGroup      string        `parquet:"_conn_group"`
	KafkaPartition int32         `parquet:"_kafka_partition"`
	KafkaOffset    int64         `parquet:"_kafka_offset"`
	ReplayedFromDL bool          `parquet:"_replayed_from_dlq"`
}

// BenchmarkGenericWriterBaseline is the reference for BenchmarkWriteRows/click: the same
// records decoded with proto.Unmarshal into the generated message, copied by hand into a Go
// struct of the same Parquet schema and written one row per call with parquet-go's
// GenericWriter (zstd, same page buffer, statistics and row-group cut, footer included).
// The goal is WriteRows/click at ≥ 0.75× of this baseline's throughput.
//
//	go test -run '^$' -bench 'WriteRows/click|GenericWriterBaseline' -benchmem -count 3 ./lakewriter/
func BenchmarkGenericWriterBaseline(b *testing.B) {
	at := time.Date(2026, 11, 22, 13, 0, 0, 0, time.UTC)
	b.Run("click", func(b *testing.B) {
		values := make([][]byte, 1000)
		size := 0
		for i := range values {
			values[i] = samples.Marshal(samples.Event("click", i, at))
			size += len(values[i])
		}
		b.SetBytes(int64(size / len(values)))
		b.ReportAllocs()
		const rowGroupSize = 64 << 20
		out := &countingWriter{w: io.Discard}
		w := parquet.NewGenericWriter[clickRow](out,
			parquet.NewSchema("Click", parquet.SchemaOf(clickRow{})),
			parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
			parquet.PageBufferSize(1<<20),
			parquet.CreatedBy("clickstream-lakewriter", "", ""),
			parquet.DataPageStatistics(true),
		)
		if got, want := w.Schema().String(), goldenParquetSchema(b, "click"); got != want {
			b.Fatalf("baseline schema differs from the lakewriter's:\n%s\nwant:\n%s", got, want)
		}
		receivedAt, guid := at, "0a8c4b3e-7f3c-4e51-9d2b-2f3c1d9a8e11"
		rows := make([]clickRow, 1)
		b.ResetTimer()
		for i := range b.N {
			msg := new(eventsv1.Click)
			if err := proto.Unmarshal(values[i%len(values)], msg); err != nil {
				b.Fatal(err)
			}
			r := &rows[0]
			*r = clickRow{
				EventID:        msg.EventId,
				UserID:         msg.UserId,
				SessionID:      msg.SessionId,
				ElementID:      msg.ElementId,
				ElementClasses: msg.ElementClasses,
				X:              msg.X,
				Y:              msg.Y,
				Button:         msg.Button.String(),
				IsDouble:       msg.IsDouble,
				ReceivedAt:     receivedAt,
				ReqGUID:        guid,
				ConnGroup:      "web",
				KafkaPartition: 1,
				KafkaOffset:    int64(i),
			}
			if msg.EventTime != nil {
				t := msg.EventTime.AsTime()
				r.EventTime = &t
			}
			idx := int32(i % 50)
			r.EventIndex = &idx
			if c := msg.Context; c != nil {
				r.Context = &clickContext{AppID: c.AppId, AppVersion: c.AppVersion}
				if d := c.Device; d != nil {
					r.Context.Device = &clickDevice{DeviceID: d.DeviceId, Platform: d.Platform.String(),
						OSVersion: d.OsVersion, Model: d.Model, Locale: d.Locale}
				}
			}
			if _, err := w.Write(rows); err != nil {
				b.Fatal(err)
			}
			if w.Size()-out.n >= rowGroupSize {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		for _, kv := range [][2]string{{MetaTopic, "t"}, {MetaPartition, "0"}, {MetaFirstOffset, "0"},
			{MetaLastOffset, strconv.Itoa(b.N)}, {MetaMessage, "clickstream.events.v1.Click"}, {MetaWriter, WriterVersion()}} {
			w.SetKeyValueMetadata(kv[0], kv[1])
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	})
}

// goldenParquetSchema returns the "parquet:" section of testdata/schema/<typ>.golden.
func goldenParquetSchema(b *testing.B, typ string) string {
	data, err := os.ReadFile(filepath.Join("testdata", "schema", typ+".golden"))
	if err != nil {
		b.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\nparquet:\n")
	if !ok {
		b.Fatalf("%s.golden has no parquet section", typ)
	}
	return strings.TrimSpace(after)
}
