package kafka

import (
	"fmt"
	"strings"
)

// Topic names and record headers of the Kafka contract (DESIGN.md, "Kafka contract"). The
// collector, validator and lakewriter all use these, so they are defined once here.

// DefaultRawTopicPattern is Raccoon's default: the first %s is replaced by the event type.
const DefaultRawTopicPattern = "clickstream-%s-log"

// DefaultDLQTopic receives one clickstream.v1.DeadLetter per refused event.
const DefaultDLQTopic = "clickstream-dlq"

// UnknownType is the type name of the catch-all raw topic: a legal event type that has no topic
// is produced there, with its real type in the HeaderEventType header.
const UnknownType = "unknown"

// Record headers. All values are UTF-8 text.
const (
	HeaderReqGUID    = "req_guid"    // the batch's req_guid
	HeaderEventIndex = "event_index" // the event's index in its batch, decimal
	HeaderConnID     = "conn_id"     // the connection id (also the record key)
	HeaderConnGroup  = "conn_group"  // the connection group; may be empty
	HeaderSentTime   = "sent_time"   // the batch's sent_time, RFC 3339 with nanoseconds; may be empty
	HeaderReceivedAt = "received_at" // when the collector received the batch, RFC 3339 with nanoseconds
	HeaderEventType  = "event_type"  // the event's type as sent by the client
	HeaderSchema     = "schema"      // added by the validator: the message's full name
	// HeaderSchemaVersion is added by the validator: the schema version (decimal) the event
	// was validated under. A lakewriter that has not seen that version yet waits for it rather
	// than write the event with an older table schema.
	HeaderSchemaVersion = "schema_version"
	// HeaderReplayedFromDLQ is "true" on a valid record that `clickstream dlq replay` moved
	// from the dead-letter topic after a schema fix; the lake shows it as _replayed_from_dlq.
	HeaderReplayedFromDLQ = "replayed_from_dlq"
)

// RawTopic names the raw topic of an event type: the first %s of pattern replaced by the type,
// as Raccoon does (a pattern without %s sends every type to one topic).
func RawTopic(pattern, eventType string) string {
	return strings.Replace(pattern, "%s", eventType, 1)
}

// ValidTopic names the topic of an event type's valid events.
func ValidTopic(eventType string) string { return fmt.Sprintf("clickstream-%s-valid", eventType) }

// ValidTopicRegex matches every valid topic and captures the event type.
const ValidTopicRegex = `^clickstream-([a-z][a-z0-9_]*)-valid$`

// RawTopicRegex returns a regular expression matching every raw topic of pattern, capturing the
// event type (pattern must contain %s).
func RawTopicRegex(pattern string) string {
	before, after, _ := strings.Cut(pattern, "%s")
	return "^" + regexpQuote(before) + "([a-z][a-z0-9_]*)" + regexpQuote(after) + "$"
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ContractTopics lists every topic the pipeline needs for the given event types: each type's raw
// and valid topic, the catch-all raw topic of unknown types, and the DLQ (dlqTopic; empty means
// DefaultDLQTopic). Topics are created up front from this list (EnsureTopics), never by producing.
func ContractTopics(rawPattern, dlqTopic string, eventTypes []string) []string {
	if dlqTopic == "" {
		dlqTopic = DefaultDLQTopic
	}
	topics := []string{RawTopic(rawPattern, UnknownType), dlqTopic}
	for _, t := range eventTypes {
		topics = append(topics, RawTopic(rawPattern, t), ValidTopic(t))
	}
	return topics
}
