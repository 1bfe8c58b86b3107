package collector

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/descriptorpb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/registry/registrytest"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// sender sends one batch over one transport and returns the ack.
type sender func(t *testing.T, h *harness, id, group string, req *pb.SendEventRequest) raccoonAck

func wsSender(asJSON bool) sender {
	return func(t *testing.T, h *harness, id, group string, req *pb.SendEventRequest) raccoonAck {
		conn := dial(t, h.wsURL(), id, group)
		sendWS(t, conn, req, asJSON)
		kind := websocket.BinaryMessage
		if asJSON {
			kind = websocket.TextMessage
		}
		return readAck(t, conn, kind)
	}
}

func wsRawSender(kind int, body func(*pb.SendEventRequest) []byte) sender {
	return func(t *testing.T, h *harness, id, group string, req *pb.SendEventRequest) raccoonAck {
		conn := dial(t, h.wsURL(), id, group)
		if err := conn.WriteMessage(kind, body(req)); err != nil {
			t.Fatal(err)
		}
		return readAck(t, conn, kind)
	}
}

func httpSender(ctype string, body func(*pb.SendEventRequest) []byte) sender {
	return func(t *testing.T, h *harness, id, group string, req *pb.SendEventRequest) raccoonAck {
		status, ack := postHTTPGroup(t, h.httpURL(), ctype, id, group, body(req))
		if status != 200 {
			t.Fatalf("HTTP %d: %+v", status, ack)
		}
		return ack
	}
}

func grpcSender(t *testing.T, h *harness, id, group string, req *pb.SendEventRequest) raccoonAck {
	conn, err := grpc.NewClient(h.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user-id", id, "x-user-group", group)
	resp, err := pb.NewEventServiceClient(conn).SendEvent(ctx, req)
	if err != nil {
		t.Fatalf("SendEvent: %v", err)
	}
	return ackOf(resp)
}

func protoBody(req *pb.SendEventRequest) []byte     { return mustMarshal(req) }
func snakeBody(req *pb.SendEventRequest) []byte     { return raccoonJSON(req, false) }
func intArrayBody(req *pb.SendEventRequest) []byte  { return raccoonJSON(req, true) }
func canonicalBody(req *pb.SendEventRequest) []byte { return mustProtoJSON(req) }

func mustProtoJSON(req *pb.SendEventRequest) []byte {
	b, err := protojson.Marshal(req)
	if err != nil {
		panic(err)
	}
	return b
}

// TestIngestEveryTransport sends a batch with two registry types and one unknown-but-legal type
// over every transport and wire form, and checks the ack and the exact records in Kafka.
func TestIngestEveryTransport(t *testing.T) {
	h := start(t, nil)
	tests := []struct {
		name string
		send sender
	}{
		{"websocket proto", wsSender(false)},
		{"websocket json snake_case base64", wsSender(true)},
		{"websocket json byte arrays", wsRawSender(websocket.TextMessage, intArrayBody)},
		{"websocket json canonical", wsRawSender(websocket.TextMessage, canonicalBody)},
		{"http proto", httpSender("application/proto", protoBody)},
		{"http x-protobuf", httpSender("application/x-protobuf", protoBody)},
		{"http json snake_case", httpSender("application/json", snakeBody)},
		{"http json canonical with charset", httpSender("application/json; charset=utf-8", canonicalBody)},
		{"grpc", grpcSender},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guid := "guid-" + strconv.Itoa(i)
			id, group := "user-"+strconv.Itoa(i), "group-"+strconv.Itoa(i%2)
			req := batch(guid, "page_view", "click", "checkout_started")
			before := time.Now()
			ack := tt.send(t, h, id, group, req)
			after := time.Now()
			wantAck(t, ack, guid, pb.Code_CODE_OK, "")
			checkRecords(t, h.recordsFor(guid, 3), req, id, group, before, after)
		})
	}
}

// checkRecords checks every record of req: topic, key, value, headers and timestamp.
func checkRecords(t *testing.T, recs []*kgo.Record, req *pb.SendEventRequest, id, group string, before, after time.Time) {
	t.Helper()
	byIndex := map[string]*kgo.Record{}
	for _, r := range recs {
		byIndex[header(r, kafka.HeaderEventIndex)] = r
	}
	for i, e := range req.GetEvents() {
		r := byIndex[strconv.Itoa(i)]
		if r == nil {
			t.Fatalf("no record with event_index %d", i)
		}
		topicType := e.GetType()
		if !isSampleType(topicType) {
			topicType = kafka.UnknownType
		}
		if want := kafka.RawTopic(kafka.DefaultRawTopicPattern, topicType); r.Topic != want {
			t.Errorf("event %d: topic %q, want %q", i, r.Topic, want)
		}
		if string(r.Key) != id {
			t.Errorf("event %d: key %q, want %q", i, r.Key, id)
		}
		if !bytes.Equal(r.Value, e.GetEventBytes()) {
			t.Errorf("event %d: value differs from event_bytes", i)
		}
		if r.Timestamp.Before(before.Truncate(time.Millisecond)) || r.Timestamp.After(after) {
			t.Errorf("event %d: timestamp %s not within the send (%s .. %s)", i, r.Timestamp, before, after)
		}
		want := []kgo.RecordHeader{
			{Key: kafka.HeaderReqGUID, Value: []byte(req.GetReqGuid())},
			{Key: kafka.HeaderEventIndex, Value: []byte(strconv.Itoa(i))},
			{Key: kafka.HeaderConnID, Value: []byte(id)},
			{Key: kafka.HeaderConnGroup, Value: []byte(group)},
			{Key: kafka.HeaderSentTime, Value: []byte(sentAt.Format(time.RFC3339Nano))},
			{Key: kafka.HeaderReceivedAt, Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
			{Key: kafka.HeaderEventType, Value: []byte(e.GetType())},
		}
		if len(r.Headers) != len(want) {
			t.Fatalf("event %d: %d headers, want %d: %v", i, len(r.Headers), len(want), r.Headers)
		}
		for j, w := range want {
			if r.Headers[j].Key != w.Key || !bytes.Equal(r.Headers[j].Value, w.Value) {
				t.Errorf("event %d: header %d = %s=%q, want %s=%q", i, j, r.Headers[j].Key, r.Headers[j].Value, w.Key, w.Value)
			}
		}
	}
}

func TestPing(t *testing.T) {
	h := start(t, nil)
	status, body := get(t, "http://"+h.c.HTTPAddr()+"/ping")
	if status != 200 || body != "pong" {
		t.Fatalf("GET /ping = %d %q", status, body)
	}
}

func TestGRPCWithoutConnectionID(t *testing.T) {
	h := start(t, nil)
	conn, err := grpc.NewClient(h.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pb.NewEventServiceClient(conn).SendEvent(context.Background(), batch("g", "click"))
	if status.Code(err) != codes.InvalidArgument || !bytes.Contains([]byte(err.Error()), []byte("connection id header missing")) {
		t.Fatalf("SendEvent without id: %v", err)
	}
}

// TestMetrics: every metric exists after traffic, and an unknown type is counted as "unknown",
// never under the client's type name.
func TestMetrics(t *testing.T) {
	h := start(t, nil)
	conn := dial(t, h.wsURL(), "metrics", "")
	sendWS(t, conn, batch("m1", "click", "checkout_started"), false)
	wantAck(t, readAck(t, conn, 0), "m1", pb.Code_CODE_OK, "")
	sendWS(t, conn, batch("m2", "Bad Type"), false)
	wantAck(t, readAck(t, conn, 0), "m2", pb.Code_CODE_BAD_REQUEST, "Bad Type")
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	kafkaMetrics := false
	for _, f := range families {
		found[f.GetName()] = true
		kafkaMetrics = kafkaMetrics || strings.HasPrefix(f.GetName(), "clickstream_collector_kafka_")
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "event_type" && l.GetValue() != "unknown" && !isSampleType(l.GetValue()) {
					t.Errorf("%s has event_type=%q: label values must come from the registry", f.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"connections_active", "batches_received_total", "batches_acked_total", "events_received_total",
		"events_produced_total", "events_failed_total", "ack_latency_seconds", "bytes_received_total", "requests_rejected_total",
		"inflight_bytes", "inflight_batches"} {
		if !found["clickstream_collector_"+name] {
			t.Errorf("metric clickstream_collector_%s missing", name)
		}
	}
	if !kafkaMetrics {
		t.Error("franz-go metrics (clickstream_collector_kafka_*) missing")
	}
	if n := testutil.ToFloat64(h.c.m.eventsProduced.WithLabelValues("unknown")); n != 1 {
		t.Errorf("events_produced_total{event_type=unknown} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(h.c.m.rejected.WithLabelValues(reasonBadType)); n != 1 {
		t.Errorf("requests_rejected_total{reason=bad_type} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(h.c.m.connections); n != 1 {
		t.Errorf("connections_active = %v, want 1", n)
	}
}

// TestSpecLoads: the run.Spec the binaries and the all-in-one command use loads the defaults.
func TestSpecLoads(t *testing.T) {
	u, err := Spec().Load(func(string) (string, bool) { return "", false })
	if err != nil || u.Name != "collector" || u.Shutdown != 30*time.Second {
		t.Fatalf("Spec().Load = %+v, %v", u, err)
	}
}

// TestNewTypeWithoutRestart: a schema version that adds a type while the collector runs gets
// the type's topics created and its events routed to its own raw topic, not the catch-all. The
// version comes from a registry shared by the process (the all-in-one command) or from the
// collector's own follower of the schema topic (a standalone collector).
func TestNewTypeWithoutRestart(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) { testNewTypeWithoutRestart(t, shared) })
	}
}

func testNewTypeWithoutRestart(t *testing.T, shared bool) {
	var live *schemastore.Live
	if shared {
		live = schemastore.Static(registry.Default())
	}
	cluster := newCluster(t)
	cfg := testConfig(cluster.ListenAddrs())
	h := &harness{t: t, cluster: cluster, reg: prometheus.NewRegistry(), health: telemetry.NewHealth(), records: map[string][]*kgo.Record{}}
	var err error
	if h.c, err = New(cfg, run.Deps{Reg: h.reg, Health: h.health, Schemas: live}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.c.Run(ctx) }()
	t.Cleanup(h.stop)
	<-h.c.Ready()

	before := batch("before", "checkout_started")
	wantAck(t, wsSender(false)(t, h, "u1", "", before), "before", pb.Code_CODE_OK, "")
	if recs := h.recordsFor("before", 1); recs[0].Topic != "clickstream-unknown-log" {
		t.Fatalf("before the version: topic %s, want the catch-all", recs[0].Topic)
	}

	next := registrytest.ExamplesPlus(t, 2, registrytest.NewType{Type: "checkout_started", Message: "CheckoutStarted",
		Fields: []registrytest.Field{{Name: "cart_id", Number: 1, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING}}})
	seed := []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}
	cl, err := kgo.NewClient(seed...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if shared {
		live.Publish(next)
	} else {
		// Two versions, as a push does them (the second adds the type); the collector is
		// told nothing but what it reads from the topic.
		for _, set := range []*descriptorpb.FileDescriptorSet{registry.DefaultDescriptorSet(), next.DescriptorSet()} {
			if _, _, err := schemastore.Push(ctx, cl, seed, schemastore.DefaultTopic, -1,
				&clickstreamv1.SchemaVersion{Files: set}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, "the new type routed", func() bool { return h.c.types.Load().version == 2 })
	topics, err := adm.ListTopics(context.Background(), "clickstream-checkout_started-log", "clickstream-checkout_started-valid")
	if err != nil || topics.Error() != nil || len(topics) != 2 {
		t.Fatalf("topics of the new type: %v %v", topics, err)
	}
	h.consumer.ForceMetadataRefresh() // its regex finds the new raw topic
	after := batch("after", "checkout_started")
	wantAck(t, wsSender(false)(t, h, "u2", "", after), "after", pb.Code_CODE_OK, "")
	if recs := h.recordsFor("after", 1); recs[0].Topic != "clickstream-checkout_started-log" {
		t.Fatalf("after the version: topic %s, want the type's own", recs[0].Topic)
	}
}
