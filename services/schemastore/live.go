// Package schemastore keeps the event schemas as data on a compacted Kafka topic
// (_clickstream_schemas): `clickstream schemas push` appends a version, and every service follows
// the topic and switches to each new version without a restart.
//
// Versions are records keyed by their number. A record is applied only when it decodes, links,
// its rules compile and it is compatible with the version in force (registry.Compatible); anything
// else is ignored with a log line and a metric, and the last good version stays in force. Push
// applies the same rules before it appends, so a refused record on the topic means someone wrote
// it by other means.
package schemastore

import (
	"context"
	"slices"
	"sync"

	"github.com/clickstream/clickstream/schemas/registry"
)

// DefaultTopic is the schema topic.
const DefaultTopic = "_clickstream_schemas"

// Live is the schema registry in force in one process. It starts from the latest good version
// on the topic (or the built-in examples when the topic has none) and follows the topic.
type Live struct {
	mu      sync.Mutex
	cur     *registry.Registry
	subs    []subscriber
	changed chan struct{} // closed and replaced by every new version
}

// Static is a Live that never changes: for tests and tools that run with a fixed registry.
func Static(r *registry.Registry) *Live {
	return &Live{cur: r, changed: make(chan struct{})}
}

// Current is the registry in force.
func (l *Live) Current() *registry.Registry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// subscriber is one Subscribe: fn, until ctx ends.
type subscriber struct {
	ctx context.Context
	fn  func(*registry.Registry)
}

// Subscribe calls fn with every later version, in order, on the follower's goroutine, until
// ctx ends (a service subscribes for the length of its Run; the Live of a process may outlive
// it). fn must not block for long: it holds up the next version, never the data path. It
// returns the registry in force when fn was added, so a caller that builds state from it
// misses no version.
func (l *Live) Subscribe(ctx context.Context, fn func(*registry.Registry)) *registry.Registry {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, subscriber{ctx: ctx, fn: fn})
	return l.cur
}

// WaitFor returns the registry in force once its version is at least version, or ctx's error.
// A service that reads a record validated under a version it has not seen yet waits here
// rather than write it with an older schema (which would drop the new fields).
func (l *Live) WaitFor(ctx context.Context, version uint32) (*registry.Registry, error) {
	for {
		l.mu.Lock()
		cur, changed := l.cur, l.changed
		l.mu.Unlock()
		if cur.Version() >= version {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// Publish puts r in force and tells the subscribers. The follower calls it for every good
// version; tests call it to stand in for a push.
func (l *Live) Publish(r *registry.Registry) {
	l.mu.Lock()
	l.cur = r
	l.subs = slices.DeleteFunc(l.subs, func(s subscriber) bool { return s.ctx.Err() != nil })
	subs := slices.Clone(l.subs)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	for _, s := range subs {
		if s.ctx.Err() == nil {
			s.fn(r)
		}
	}
}
