// Command clickstream is the all-in-one command.
//
//	clickstream run      run several services in one process (CLICKSTREAM_SERVICES, default all four);
//	                     with CLICKSTREAM_EMBEDDED=true (what `make run` sets) Kafka is an in-process
//	                     broker persisted under the lake directory, and the lake is a local directory
//	clickstream topics   create every contract topic on CLICKSTREAM_KAFKA_BROKERS (the stack scripts,
//	                     compose and Kubernetes run this before the services start)
//	clickstream healthcheck
//	                     exit 0 when the running process's admin server (CLICKSTREAM_ADMIN_ADDR)
//	                     answers /readyz with 200: the container image's health check
//	clickstream config-reference [README.md]
//	                     print every service's environment variables as Markdown, or rewrite the
//	                     README's generated configuration reference (make docs)
//
// Each service reads its own settings from its own prefix (COLLECTOR_, VALIDATOR_, LAKEWRITER_,
// COMPACTOR_), exactly as its own binary does; see README, "Configuration".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/clickstream/clickstream/collector"
	"github.com/clickstream/clickstream/compactor"
	"github.com/clickstream/clickstream/lakewriter"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/config"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/run"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
	"github.com/clickstream/clickstream/validator"
)

// envPrefix prefixes every environment variable of the all-in-one command.
const envPrefix = "CLICKSTREAM_"

// Config is the all-in-one command's own configuration (prefix CLICKSTREAM_).
type Config struct {
	Telemetry telemetry.Config `envPrefix:""`
	// Services are the services this process runs, in pipeline order.
	Services []string `env:"SERVICES" doc:"services to run in this process, comma-separated: collector, validator, lakewriter, compactor"`
	// Embedded runs Kafka in process (franz-go kfake) and keeps everything on local disk.
	Embedded bool `env:"EMBEDDED" doc:"run Kafka in process (kfake, persisted under DATA_DIR) and a local lake: the make run default"`
	// DataDir is the lake directory in embedded mode; the in-process Kafka keeps its log in DATA_DIR/.kafka.
	DataDir string `env:"DATA_DIR" doc:"embedded mode: lake directory (Kafka's log goes to DATA_DIR/.kafka)"`
	// Kafka is used by the topics command.
	Kafka kafka.Config `envPrefix:"KAFKA_"`
	// Topics is how the topics command creates topics.
	Topics kafka.Topics `envPrefix:"TOPICS_"`
	// TopicPattern is the raw topic pattern, as the collector's TOPIC_PATTERN.
	TopicPattern string `env:"TOPIC_PATTERN" doc:"raw topic pattern of the topics command; first %s = event type"`
	// DLQTopic is the dead-letter topic the topics command creates, as the validator's DLQ_TOPIC.
	DLQTopic string `env:"DLQ_TOPIC" doc:"dead-letter topic of the topics command and of dlq replay (= VALIDATOR_DLQ_TOPIC and LAKEWRITER_DLQ_TOPIC)"`
	// SchemasTopic is the schema topic: schemas push appends to it, run and the services follow it.
	SchemasTopic string `env:"SCHEMAS_TOPIC" doc:"schema topic (= the services' SCHEMAS_TOPIC): schemas push appends versions, run follows it"`
	// SchemasDir is a directory of the team's own .proto files that run and topics push (when it
	// changed) before the services start; empty: the built-in examples on an empty schema topic.
	SchemasDir string `env:"SCHEMAS_DIR" doc:"run, topics: push this directory of .proto files first (empty: register the built-in examples when the schema topic is empty)"`
}

var allServices = []string{"collector", "validator", "lakewriter", "compactor"}

func defaultConfig() Config {
	return Config{
		Telemetry:    telemetry.DefaultConfig("127.0.0.1:9090"),
		Services:     allServices,
		DataDir:      "lake",
		Kafka:        kafka.DefaultConfig("clickstream-admin"),
		Topics:       kafka.Topics{Partitions: 3, ReplicationFactor: -1},
		TopicPattern: kafka.DefaultRawTopicPattern,
		DLQTopic:     kafka.DefaultDLQTopic,
		SchemasTopic: schemastore.DefaultTopic,
	}
}

func (c Config) validate() error {
	var p config.Problems
	p.Merge("telemetry", c.Telemetry.Validate())
	p.Merge("kafka", c.Kafka.Validate())
	for _, s := range c.Services {
		p.OneOf("services", s, allServices...)
	}
	if len(c.Services) == 0 {
		p.Addf("services", "at least one service is required")
	}
	p.Positive("topics.partitions", int64(c.Topics.Partitions))
	if !strings.Contains(c.TopicPattern, "%s") {
		p.Addf("topic_pattern", "must contain %%s: %q", c.TopicPattern)
	}
	p.Required("data_dir", c.DataDir)
	p.Required("dlq_topic", c.DLQTopic)
	p.Required("schemas_topic", c.SchemasTopic)
	return p.Err()
}

func main() { os.Exit(mainErr(os.Args[1:], os.Stderr)) }

func mainErr(args []string, stderr io.Writer) int { return mainErrTo(args, os.Stdout, stderr) }

// mainErrTo runs one command; the schemas and dlq commands and topics print their results to
// stdout.
func mainErrTo(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd = args[0]
	}
	if cmd == "config-reference" { // documentation: the defaults, whatever the environment says
		if err := writeReference(args[1:]); err != nil {
			fmt.Fprintf(stderr, "clickstream config-reference: %v\n", err)
			return 1
		}
		return 0
	}
	cfg := defaultConfig()
	err := config.FromEnv(&cfg, envPrefix)
	if err == nil {
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "clickstream: invalid configuration:\n%v\n", err)
		return 2
	}
	log := telemetry.NewLogger(cfg.Telemetry, stderr, "clickstream")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "topics":
		err = createTopics(ctx, cfg, stdout)
	case "run":
		err = runServices(ctx, cfg, stderr)
	case "healthcheck":
		err = telemetry.Probe(cfg.Telemetry.AdminAddr, 3*time.Second)
	case "schemas":
		err = schemasCommand(ctx, cfg, args[1:], stdout)
	case "dlq":
		err = dlqCommand(ctx, cfg, args[1:], stdout, log)
	default:
		fmt.Fprintf(stderr, "usage: clickstream [run|topics|schemas|dlq|healthcheck|config-reference [README.md]]\n")
		return 2
	}
	if err != nil {
		if cmd == "schemas" || cmd == "dlq" {
			// Commands people type: every problem on its own line, as a compiler prints them.
			fmt.Fprintf(stderr, "clickstream %s: %v\n", cmd, err)
			return 1
		}
		log.Error(cmd+" failed", "err", err)
		return 1
	}
	return 0
}

func createTopics(ctx context.Context, cfg Config, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, _, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := registerSchemas(ctx, cfg, stdout); err != nil {
		return err
	}
	// The topics of every type of the version in force (a push creates its new types' topics
	// too; this also repairs topics deleted by hand).
	h, err := loadSchemas(ctx, cfg)
	if err != nil {
		return err
	}
	if h.Latest == nil {
		return fmt.Errorf("%s holds no usable schema version", cfg.SchemasTopic)
	}
	topics := kafka.ContractTopics(cfg.TopicPattern, cfg.DLQTopic, h.Latest.Names())
	if err := kafka.EnsureTopics(ctx, cl, cfg.Topics, topics...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d; %d topics present: %s\n", h.Latest.Version(), len(topics), strings.Join(topics, " "))
	return nil
}

// registerSchemas makes sure the schema topic holds a version before services start: the
// SCHEMAS_DIR when it is set (pushed when it differs from the latest version; refused when it
// is incompatible), else the built-in examples as version 1 when the topic is empty.
func registerSchemas(ctx context.Context, cfg Config, stdout io.Writer) error {
	if cfg.SchemasDir != "" {
		return pushDir(ctx, cfg, cfg.SchemasDir, "", false, stdout)
	}
	h, err := loadSchemas(ctx, cfg)
	if err != nil {
		return err
	}
	if len(h.Versions) > 0 {
		return nil
	}
	return pushSet(ctx, cfg, registry.DefaultDescriptorSet(), "built-in examples", "registered on first start", stdout)
}

func runServices(ctx context.Context, cfg Config, stderr io.Writer) error {
	log := telemetry.NewLogger(cfg.Telemetry, stderr, "clickstream")
	lookup := config.Lookup(os.LookupEnv)
	if cfg.Embedded {
		dataDir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return err
		}
		topics := kafka.ContractTopics(kafka.DefaultRawTopicPattern, kafka.DefaultDLQTopic, registry.Default().Names())
		cluster, err := kfake.NewCluster(
			kfake.DataDir(filepath.Join(dataDir, ".kafka")),
			kfake.SeedTopics(3, topics...),
		)
		if err != nil {
			return fmt.Errorf("start the embedded Kafka: %w", err)
		}
		defer cluster.Close()
		brokers := strings.Join(cluster.ListenAddrs(), ",")
		log.Info("embedded Kafka started", "brokers", brokers, "log", filepath.Join(dataDir, ".kafka"))
		log.Info("embedded lake", "dir", dataDir)
		lookup = embeddedLookup(brokers, dataDir)
		cfg.Kafka.Brokers = cluster.ListenAddrs()
		cfg.Topics.Partitions = 3
	}
	if err := registerSchemas(ctx, cfg, io.Discard); err != nil {
		return fmt.Errorf("register the schemas: %w", err)
	}
	var units []run.Unit
	for _, name := range cfg.Services {
		u, err := loadUnit(name, lookup)
		if err != nil {
			return err
		}
		units = append(units, u)
	}
	reg := telemetry.NewRegistry()
	health := telemetry.NewHealth()
	// One follower of the schema topic for every service of the process: they switch versions
	// together.
	schemas, err := schemastore.Follow(ctx, schemaClientOpts(cfg), cfg.SchemasTopic, log, reg, "clickstream")
	if err != nil {
		return err
	}
	group := run.NewGroup(run.Deps{Log: log, Reg: reg, Health: health, Schemas: schemas}, units...)
	var deadline time.Duration
	for _, u := range units {
		deadline += u.Shutdown
	}
	err = run.Serve(ctx, log, cfg.Telemetry.AdminAddr, reg, health, group, deadline)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func loadUnit(name string, lookup config.Lookup) (run.Unit, error) {
	switch name {
	case "collector":
		return collector.Spec().Load(lookup)
	case "validator":
		return validator.Spec().Load(lookup)
	case "lakewriter":
		return lakewriter.Spec().Load(lookup)
	default:
		return compactor.Spec().Load(lookup)
	}
}

// embeddedLookup points every service at the in-process broker and the local lake, and turns
// off the services' own admin servers (this process serves one for all). Other settings still
// come from the environment.
func embeddedLookup(brokers, dataDir string) config.Lookup {
	forced := map[string]string{}
	defaults := map[string]string{}
	for _, prefix := range []string{collector.EnvPrefix, validator.EnvPrefix, lakewriter.EnvPrefix, compactor.EnvPrefix} {
		forced[prefix+"KAFKA_BROKERS"] = brokers
		forced[prefix+"ADMIN_ADDR"] = ""
		defaults[prefix+"LAKE_URL"] = dataDir
	}
	// One instance: a stable transactional id, so a restart fences the previous one.
	defaults[validator.EnvPrefix+"INSTANCE_ID"] = "embedded"
	return func(name string) (string, bool) {
		if v, ok := forced[name]; ok {
			return v, true
		}
		if v, ok := os.LookupEnv(name); ok {
			return v, true
		}
		v, ok := defaults[name]
		return v, ok
	}
}
