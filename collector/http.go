package collector

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/clickstream/clickstream/schemas/gen/raystack/raccoon/v1beta1"
)

// serveHTTP is POST /api/v1/events: one batch per request, answered once Kafka has it.
// Raccoon compared the content type as a string; here parameters such as charset are allowed
// and application/x-protobuf is accepted too. Status: 200 success, 400 bad request, 413 body
// too large, 415 content type, 500 Kafka failed, 503 overloaded or shutting down. The body
// is always a SendEventResponse (non-2xx means failure to clients that do not read it).
func (c *Collector) serveHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	ctype := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ctype)
	asJSON := false
	switch {
	case err == nil && mt == "application/json":
		asJSON = true
	case err == nil && (mt == "application/proto" || mt == "application/x-protobuf" || mt == "application/protobuf"):
	default:
		o := badRequest(reasonContentType, "unsupported content type %q: send application/proto or application/json", ctype)
		c.answerHTTP(w, "application/json", true, "", o, received, http.StatusUnsupportedMediaType)
		return
	}
	id, err := c.identityFrom(r.Header.Get)
	if err != nil {
		c.answerHTTP(w, mt, asJSON, "", badRequest(reasonBadIdentity, "%v", err), received, http.StatusBadRequest)
		return
	}
	buf := c.buffer()
	defer c.putBuffer(buf)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(c.cfg.MaxRequestBytes))); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			o := badRequest(reasonTooLarge, "body larger than the limit of %d bytes", c.cfg.MaxRequestBytes)
			c.answerHTTP(w, mt, asJSON, "", o, received, http.StatusRequestEntityTooLarge)
			return
		}
		c.answerHTTP(w, mt, asJSON, "", badRequest(reasonDecode, "cannot read body: %v", err), received, http.StatusBadRequest)
		return
	}
	format := formatProto
	if asJSON {
		format = formatJSON
	}
	c.m.batchesReceived.WithLabelValues(transportHTTP, format).Inc()
	c.m.bytesReceived.WithLabelValues(transportHTTP).Add(float64(buf.Len()))
	var req *pb.SendEventRequest
	if asJSON {
		req, err = decodeJSON(buf.Bytes())
	} else {
		req, err = decodeProto(buf.Bytes())
	}
	if err != nil {
		c.answerHTTP(w, mt, asJSON, guidOf(req), badRequest(reasonDecode, "cannot deserialize request: %v", err), received, http.StatusBadRequest)
		return
	}
	o := c.submitAndWait(r.Context(), id, req, received)
	c.answerHTTP(w, mt, asJSON, req.GetReqGuid(), o, received, httpStatus(o))
}

// submitAndWait checks and submits req and waits for its outcome (HTTP and gRPC).
func (c *Collector) submitAndWait(ctx context.Context, id identity, req *pb.SendEventRequest, received time.Time) outcome {
	if o, good := c.check(req); !good {
		return o
	}
	done := make(chan outcome, 1)
	c.submit(ctx.Done(), id, req, received, func(o outcome) { done <- o })
	return <-done
}

func httpStatus(o outcome) int {
	switch {
	case o.success():
		return http.StatusOK
	case o.code == pb.Code_CODE_BAD_REQUEST:
		return http.StatusBadRequest
	case o.label == reasonOverloaded || o.label == reasonShuttingDown:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (c *Collector) answerHTTP(w http.ResponseWriter, ctype string, asJSON bool, guid string, o outcome, received time.Time, code int) {
	c.observe(transportHTTP, o, received)
	body := encodeResponse(response(guid, o), asJSON)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// grpcService is raystack.raccoon.v1beta1.EventService. Identity comes from the metadata
// (lower-cased header names); a missing connection id is refused as Raccoon does. Every
// other outcome is a normal SendEventResponse, with a reason on errors.
type grpcService struct {
	pb.UnimplementedEventServiceServer
	c *Collector
}

func (s grpcService) SendEvent(ctx context.Context, req *pb.SendEventRequest) (*pb.SendEventResponse, error) {
	c := s.c
	received := time.Now()
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(name string) string {
		if v := md.Get(name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	id, err := c.identityFrom(get)
	if err == nil && id.id == "" {
		err = errors.New("connection id header missing")
	}
	if err != nil {
		c.m.rejected.WithLabelValues(reasonBadIdentity).Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	c.m.batchesReceived.WithLabelValues(transportGRPC, formatProto).Inc()
	c.m.bytesReceived.WithLabelValues(transportGRPC).Add(float64(proto.Size(req)))
	var o outcome
	if err := noUnknownFields(req); err != nil {
		o = badRequest(reasonDecode, "cannot deserialize request: %v", err)
	} else {
		o = c.submitAndWait(ctx, id, req, received)
	}
	c.observe(transportGRPC, o, received)
	return response(req.GetReqGuid(), o), nil
}
