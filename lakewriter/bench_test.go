package lakewriter

import (
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/lake"
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
