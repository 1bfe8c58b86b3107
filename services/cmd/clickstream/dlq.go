package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/validator"
)

// dlqCommand: clickstream dlq replay --type T [--since T] [--until T] [--dry-run]
//
// re-validates the dead letters of type T received in [since, until) against the latest schema
// version and moves those that now pass into the type's valid topic, once (see validator.Replay).
func dlqCommand(ctx context.Context, cfg Config, args []string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 || args[0] != "replay" {
		return errors.New("usage: clickstream dlq replay --type TYPE [--since TIME] [--until TIME] [--dry-run]")
	}
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	typ := fs.String("type", "", "event type whose dead letters are replayed (required)")
	since := fs.String("since", "", "only dead letters received at or after this time (RFC 3339, or a duration ago such as 24h)")
	until := fs.String("until", "", "only dead letters received before this time (RFC 3339, or a duration ago)")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed; write nothing")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *typ == "" {
		return errors.New("dlq replay: --type is required")
	}
	now := time.Now()
	from, err := parseSince(*since, now)
	if err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	to, err := parseSince(*until, now)
	if err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	h, err := loadSchemas(ctx, cfg)
	if err != nil {
		return err
	}
	reg := h.Latest
	if reg == nil {
		reg = registry.Default()
	}
	if _, ok := reg.Lookup(*typ); !ok {
		return fmt.Errorf("dlq replay: type %q is not in schema version %d (%s)", *typ, reg.Version(), reg)
	}
	res, err := validator.Replay(ctx, validator.ReplayConfig{
		Kafka: cfg.Kafka, DLQTopic: cfg.DLQTopic, EventType: *typ, Since: from, Until: to,
		Topics: cfg.Topics, DryRun: *dryRun,
	}, reg, log)
	if err != nil {
		return err
	}
	verb := "replayed"
	if *dryRun {
		verb = "would replay"
	}
	fmt.Fprintf(stdout, "%s: scanned %d dead letters, %d of type %s in range; %s %d against schema version %d, %d still invalid, %d replayed before\n",
		cfg.DLQTopic, res.Scanned, res.Matched, *typ, verb, res.Replayed, reg.Version(), res.StillInvalid, res.AlreadyReplayed)
	return nil
}

// parseSince reads an RFC 3339 time or a duration before now; "" is the zero time (unbounded).
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}
