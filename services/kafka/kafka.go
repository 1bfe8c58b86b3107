// Package kafka builds franz-go clients from configuration, with logging (kslog) and metrics
// (kprom) plugged in, and creates the pipeline's topics up front.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/clickstream/clickstream/services/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"
)

// Config is how a service reaches Kafka.
type Config struct {
	// Brokers are the seed brokers (kgo.SeedBrokers, Kafka's bootstrap.servers).
	Brokers []string `env:"BROKERS" doc:"comma-separated seed brokers (bootstrap.servers)"`
	// ClientID is sent to the broker (client.id), for its logs and quotas.
	ClientID string `env:"CLIENT_ID" doc:"client.id sent to the brokers"`
	// DialTimeout bounds one connection attempt (kgo.DialTimeout).
	DialTimeout time.Duration `env:"DIAL_TIMEOUT" doc:"timeout of one broker connection attempt"`
	// RequestRetries bounds retries of one request (kgo.RequestRetries).
	RequestRetries int `env:"REQUEST_RETRIES" doc:"retries of a failed request before it is given up"`
}

// DefaultConfig points at a local broker.
func DefaultConfig(clientID string) Config {
	return Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: clientID, DialTimeout: 10 * time.Second, RequestRetries: 20}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p config.Problems
	if len(c.Brokers) == 0 {
		p.Addf("brokers", "at least one broker is required")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			p.Addf("brokers", "not a host:port address: %q", b)
		}
	}
	p.Required("client_id", c.ClientID)
	p.PositiveDuration("dial_timeout", c.DialTimeout)
	if c.RequestRetries < 0 {
		p.Addf("request_retries", "must not be negative, got %d", c.RequestRetries)
	}
	return p.Err()
}

// ClientOpts are the options every client of the pipeline starts from: brokers, client id,
// timeouts, logging through log and franz-go's metrics under <namespace>_kafka_* in reg (none
// when reg is nil). Callers that build their own kind of client (the validator's
// kgo.NewGroupTransactSession) append their role's options to these.
func ClientOpts(cfg Config, log *slog.Logger, reg prometheus.Registerer, namespace string) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(cfg.DialTimeout),
		kgo.RequestRetries(cfg.RequestRetries),
		kgo.WithLogger(kslog.New(log.With("component", "kafka"))),
	}
	if reg != nil {
		m := kprom.NewMetrics(namespace, kprom.Registerer(reg), kprom.Subsystem("kafka"))
		opts = append(opts, kgo.WithHooks(m))
	}
	return opts
}

// NewClient builds a client from ClientOpts plus opts, the role-specific options (producer,
// consumer group…).
func NewClient(cfg Config, log *slog.Logger, reg prometheus.Registerer, namespace string, opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(ClientOpts(cfg, log, reg, namespace), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client %s: %w", cfg.ClientID, err)
	}
	return cl, nil
}

// Topics describes how EnsureTopics creates topics.
type Topics struct {
	Partitions        int32 `env:"PARTITIONS" doc:"partitions of each created topic"`
	ReplicationFactor int16 `env:"REPLICATION_FACTOR" doc:"replication factor of each created topic (-1: broker default)"`
}

// EnsureTopics creates every topic in names that does not exist yet; existing ones are left as
// they are. It is what the stack scripts, compose and the all-in-one command run before the
// services start, because the collector never creates topics by producing.
func EnsureTopics(ctx context.Context, cl *kgo.Client, t Topics, names ...string) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, t.Partitions, t.ReplicationFactor, nil, names...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// WaitForBrokers polls until a broker answers metadata or ctx is done.
func WaitForBrokers(ctx context.Context, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	for {
		_, err := adm.ListBrokers(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka not reachable: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
