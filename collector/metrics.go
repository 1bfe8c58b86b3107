package collector

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values. Every label comes from a fixed set: never raw client input. Event types are the
// registry's names plus "unknown".
const (
	transportWS   = "websocket"
	transportHTTP = "http"
	transportGRPC = "grpc"

	formatProto = "proto"
	formatJSON  = "json"

	// Rejection reasons (label "reason" of rejected_total).
	reasonDecode        = "decode"    // not a readable request, or lossy JSON
	reasonTooLarge      = "too_large" // frame, body or one event over its limit
	reasonTooMany       = "too_many_events"
	reasonBadType       = "bad_type"     // event type that cannot name a topic
	reasonBadIdentity   = "bad_identity" // identity header too long, or missing on gRPC
	reasonRateLimit     = "rate_limit"   // per-connection token bucket empty
	reasonContentType   = "content_type" // HTTP content type not proto or JSON
	reasonMaxConn       = "max_connections"
	reasonDuplicateConn = "duplicate_connection"
	reasonOverloaded    = "overloaded" // in-flight budget stayed full for InflightWait
	reasonShuttingDown  = "shutting_down"
)

type metrics struct {
	connections     prometheus.Gauge
	batchesReceived *prometheus.CounterVec // transport, format
	batchesAcked    *prometheus.CounterVec // transport, status
	eventsReceived  *prometheus.CounterVec // event_type
	eventsProduced  *prometheus.CounterVec // event_type
	eventsFailed    *prometheus.CounterVec // event_type
	ackLatency      *prometheus.HistogramVec
	bytesReceived   *prometheus.CounterVec // transport
	rejected        *prometheus.CounterVec // reason
	inflightBytes   prometheus.Gauge
	inflightBatches prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "clickstream", "collector"
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections_active",
			Help: "Open WebSocket connections."}),
		batchesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_received_total",
			Help: "Requests (batches) read, by transport and wire format, before any check."}, []string{"transport", "format"}),
		batchesAcked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "batches_acked_total",
			Help: "Acks sent, by transport and status (success or error)."}, []string{"transport", "status"}),
		eventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_received_total",
			Help: "Events of accepted batches handed to the producer; = produced + failed once settled."}, []string{"event_type"}),
		eventsProduced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_produced_total",
			Help: "Events Kafka acknowledged."}, []string{"event_type"}),
		eventsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "events_failed_total",
			Help: "Events Kafka did not take (error or timeout)."}, []string{"event_type"}),
		ackLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "ack_latency_seconds",
			Help:    "From reading a batch to its ack being ready to write, by transport.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"transport"}),
		bytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_received_total",
			Help: "Request bytes read (frames, bodies, gRPC messages), by transport."}, []string{"transport"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "requests_rejected_total",
			Help: "Batches and connections refused, by reason."}, []string{"reason"}),
		inflightBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "inflight_bytes",
			Help: "Budget bytes of batches handed to Kafka and not yet settled."}),
		inflightBatches: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "inflight_batches",
			Help: "Batches handed to Kafka and not yet settled."}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.connections, m.batchesReceived, m.batchesAcked, m.eventsReceived, m.eventsProduced,
		m.eventsFailed, m.ackLatency, m.bytesReceived, m.rejected, m.inflightBytes, m.inflightBatches} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, t := range []string{transportWS, transportHTTP, transportGRPC} {
		m.batchesAcked.WithLabelValues(t, "success")
		m.batchesAcked.WithLabelValues(t, "error")
	}
	for _, r := range []string{reasonDecode, reasonTooLarge, reasonTooMany, reasonBadType, reasonBadIdentity, reasonRateLimit,
		reasonContentType, reasonMaxConn, reasonDuplicateConn, reasonOverloaded, reasonShuttingDown} {
		m.rejected.WithLabelValues(r)
	}
	return m, nil
}
