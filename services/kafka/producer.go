package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/clickstream/clickstream/services/config"
)

// Producer tunes a franz-go producer; the collector and the validator share it. Acks are always
// all (acks=-1) and the producer is always idempotent (transactional in the validator): these
// settings trade latency and size, never durability.
type Producer struct {
	// Compression is the batch codec: zstd, lz4, snappy or none (compression.type).
	Compression string `env:"COMPRESSION" doc:"batch compression: zstd, lz4, snappy or none (compression.type)"`
	// Linger is how long a partition's batch waits for more records (linger.ms,
	// kgo.ProducerLinger); it adds to ack latency.
	Linger time.Duration `env:"LINGER" doc:"wait for more records before sending a batch (linger.ms)"`
	// BatchMaxBytes caps one record batch (kgo.ProducerBatchMaxBytes); it must not exceed the
	// topics' max.message.bytes and must hold the largest record.
	BatchMaxBytes int32 `env:"BATCH_MAX_BYTES" doc:"maximum bytes of one record batch (<= topic max.message.bytes)"`
}

var codecs = map[string]kgo.CompressionCodec{
	"zstd": kgo.ZstdCompression(), "lz4": kgo.Lz4Compression(), "snappy": kgo.SnappyCompression(), "none": kgo.NoCompression(),
}

// Validate reports every problem; paths are relative (compression, linger, batch_max_bytes).
func (p Producer) Validate() error {
	var probs config.Problems
	probs.OneOf("compression", p.Compression, "zstd", "lz4", "snappy", "none")
	if p.Linger < 0 {
		probs.Addf("linger", "must not be negative, got %s", p.Linger)
	}
	probs.Positive("batch_max_bytes", int64(p.BatchMaxBytes))
	return probs.Err()
}

// Opts are the franz-go options of these settings, plus acks=all.
func (p Producer) Opts() []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codecs[p.Compression], kgo.NoCompression()),
		kgo.ProducerLinger(p.Linger),
		kgo.ProducerBatchMaxBytes(p.BatchMaxBytes),
	}
}
