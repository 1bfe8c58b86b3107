// Package schemas holds the protobuf sources (proto/), the Go code generated from them (gen/,
// committed; regenerate with make generate), the event-type registry built from them or from a
// pushed descriptor set, with its rule, compatibility and diff checks (registry/), the run-time
// compiler of a team's .proto directory (compile/) and example events (samples/).
package schemas
