package validator

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/services/kafka"
)

const namespace = "clickstream_validator"

// maxRuleLabels caps the rule_id label values. Rule ids come from the schemas (protovalidate's
// standard ids and the schemas' own CEL ids), never from clients, so the set is small; the cap
// only guards the time series count against a schema with very many custom rules.
const maxRuleLabels = 200

// otherRule is the rule_id of violations past the cap.
const otherRule = "other"

// metrics are the validator's Prometheus series. Event counters move only when the transaction
// that wrote the events commits, so they count each raw record once however often it was
// processed: received = valid + dead_lettered holds at every scrape.
type metrics struct {
	received     *prometheus.CounterVec // type
	valid        *prometheus.CounterVec // type
	deadLettered *prometheus.CounterVec // type, kind
	violations   *prometheus.CounterVec // type, rule_id
	committed    prometheus.Counter
	aborted      *prometheus.CounterVec // reason
	commit       prometheus.Histogram
	lag          *prometheus.GaugeVec // topic
	openRecords  prometheus.Gauge
	brokenSchema *prometheus.GaugeVec // type, reason
	// checkerFailures counts schema versions whose Checker could not be built (kept the old).
	checkerFailures prometheus.Counter
	schemaWaits     *prometheus.CounterVec // outcome

	mu    sync.Mutex
	rules map[string]bool // admitted rule_id label values
}

// Reasons of an aborted transaction.
const (
	abortRebalance = "rebalance"     // the group rebalanced (or the member was lost) during it
	abortProduce   = "produce_error" // a record could not be produced
	abortSchema    = "broken_schema" // an event could not be judged (the validator stops)
	abortError     = "error"         // ending the transaction failed (the validator stops)
)

// Outcomes of waiting for a newer schema version (awaitSchemas).
const (
	waitNewVersion = "new_version" // a newer version was put in force
	waitNoVersion  = "no_version"  // none came within SCHEMA_WAIT, or it could not be applied
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "received_total",
			Help: "Raw events whose outcome was committed, by event type (\"unknown\" when not in the registry). Equals valid + dead_lettered."}, []string{"type"}),
		valid: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "valid_total",
			Help: "Events committed to their valid topic, by event type."}, []string{"type"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "dead_lettered_total",
			Help: "Events committed to the dead-letter queue, by event type and failure kind."}, []string{"type", "kind"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "violations_total",
			Help: "Rule violations of dead-lettered events, by event type and protovalidate rule id (\"other\" past the label cap)."}, []string{"type", "rule_id"}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "transactions_committed_total",
			Help: "Kafka transactions committed (produce + offset commit)."}),
		aborted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "transactions_aborted_total",
			Help: "Kafka transactions aborted, by reason; their records are processed again."}, []string{"reason"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "transaction_commit_seconds",
			Help:    "Time to end a transaction: flush, offset commit, heartbeat, EndTxn.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		openRecords: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "transaction_open_records",
			Help: "Raw records in the transaction being written (0 between transactions): work a crash now would leave to the next owner."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "lag_records",
			Help: "Records in the raw topic behind the last committed transaction, summed over the partitions this instance consumes."}, []string{"topic"}),
		brokenSchema: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "broken_schema",
			Help: "1 when the validator stopped because an event type's schema is broken (a rule fails) or missing (a raw topic without schema)."}, []string{"type", "reason"}),
		checkerFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "schema_checker_failures_total",
			Help: "Schema versions not put in force because their rules could not be compiled or checked; the previous version stayed."}),
		schemaWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "schema_waits_total",
			Help: "Waits for a newer schema version because an event type had its own raw topic but no schema, by outcome (new_version, no_version)."}, []string{"outcome"}),
		rules: map[string]bool{},
	}
	// Two validators in one process (tests, an embedding program) share the collectors.
	var errs []error
	m.received = register(reg, m.received, &errs)
	m.valid = register(reg, m.valid, &errs)
	m.deadLettered = register(reg, m.deadLettered, &errs)
	m.violations = register(reg, m.violations, &errs)
	m.committed = register(reg, m.committed, &errs)
	m.aborted = register(reg, m.aborted, &errs)
	m.commit = register(reg, m.commit, &errs)
	m.lag = register(reg, m.lag, &errs)
	m.openRecords = register(reg, m.openRecords, &errs)
	m.brokenSchema = register(reg, m.brokenSchema, &errs)
	m.checkerFailures = register(reg, m.checkerFailures, &errs)
	m.schemaWaits = register(reg, m.schemaWaits, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	m.addTypes(nil)
	for _, r := range []string{abortRebalance, abortProduce, abortSchema, abortError} {
		m.aborted.WithLabelValues(r)
	}
	for _, o := range []string{waitNewVersion, waitNoVersion} {
		m.schemaWaits.WithLabelValues(o)
	}
	return m, nil
}

// addTypes creates the series of types (and of unknown) up front, so that sums and rates see
// zeros rather than gaps; every schema version calls it with its types.
func (m *metrics) addTypes(types []string) {
	for _, t := range append(types, kafka.UnknownType) {
		m.received.WithLabelValues(t)
		m.valid.WithLabelValues(t)
		for _, k := range failureKinds {
			m.deadLettered.WithLabelValues(t, kindLabel(k))
		}
	}
}

// register registers c in reg, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if prev, ok := are.ExistingCollector.(C); ok {
			return prev
		}
	}
	*errs = append(*errs, err)
	return c
}

var failureKinds = []clickstreamv1.FailureKind{
	clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE,
	clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR,
	clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED,
	clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE,
}

// kindLabel is the label value of a failure kind: "validation_failed" for
// FAILURE_KIND_VALIDATION_FAILED.
func kindLabel(k clickstreamv1.FailureKind) string {
	switch k {
	case clickstreamv1.FailureKind_FAILURE_KIND_UNKNOWN_TYPE:
		return "unknown_type"
	case clickstreamv1.FailureKind_FAILURE_KIND_DECODE_ERROR:
		return "decode_error"
	case clickstreamv1.FailureKind_FAILURE_KIND_VALIDATION_FAILED:
		return "validation_failed"
	case clickstreamv1.FailureKind_FAILURE_KIND_TOO_LARGE:
		return "too_large"
	}
	return "unspecified"
}

// ruleLabel admits rule ids as label values up to the cap, then answers "other".
func (m *metrics) ruleLabel(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rules[id] {
		return id
	}
	if len(m.rules) >= maxRuleLabels {
		return otherRule
	}
	m.rules[id] = true
	return id
}

// tally counts the outcomes of one transaction; they reach the metrics only if it commits.
type tally struct {
	valid map[string]int
	dead  map[deadKey]int
	rules map[ruleKey]int
}

type deadKey struct {
	typ  string
	kind clickstreamv1.FailureKind
}

type ruleKey struct{ typ, rule string }

func newTally() *tally {
	return &tally{valid: map[string]int{}, dead: map[deadKey]int{}, rules: map[ruleKey]int{}}
}

func (t *tally) reset() {
	clear(t.valid)
	clear(t.dead)
	clear(t.rules)
}

func (t *tally) addValid(typ string) { t.valid[typ]++ }

func (t *tally) addDead(typ string, dl *clickstreamv1.DeadLetter) {
	t.dead[deadKey{typ, dl.Kind}]++
	for _, v := range dl.Violations {
		t.rules[ruleKey{typ, v.RuleId}]++
	}
}

// commit adds a committed transaction's tally to the metrics.
func (m *metrics) add(t *tally) {
	for typ, n := range t.valid {
		m.received.WithLabelValues(typ).Add(float64(n))
		m.valid.WithLabelValues(typ).Add(float64(n))
	}
	for k, n := range t.dead {
		m.received.WithLabelValues(k.typ).Add(float64(n))
		m.deadLettered.WithLabelValues(k.typ, kindLabel(k.kind)).Add(float64(n))
	}
	for k, n := range t.rules {
		m.violations.WithLabelValues(k.typ, m.ruleLabel(k.rule)).Add(float64(n))
	}
}
