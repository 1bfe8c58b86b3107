// Package schemas holds the protobuf sources (proto/), the Go code generated from them (gen/,
// committed; regenerate with make generate), the event-type registry built from them
// (registry/) and example events (samples/).
package schemas
