package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/clickstream/clickstream/schemas/compile"
	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/schemastore"
	"github.com/clickstream/clickstream/services/telemetry"
)

// The schemas command manages the versions on the schema topic:
//
//	clickstream schemas push [-m COMMENT] [-dry-run] DIR   compile DIR's .proto files, check them and
//	                                                        their compatibility, append a version
//	clickstream schemas list                               every version
//	clickstream schemas show VERSION                       a version's event types and messages
//	clickstream schemas diff A B                           what changed from version A to B (0: the built-in examples)
func schemasCommand(ctx context.Context, cfg Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: clickstream schemas push|list|show|diff ...")
	}
	switch args[0] {
	case "push":
		fs := flag.NewFlagSet("schemas push", flag.ContinueOnError)
		comment := fs.String("m", "", "a comment stored with the version")
		dryRun := fs.Bool("dry-run", false, "compile and check only; append nothing")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: clickstream schemas push [-m COMMENT] [-dry-run] DIR")
		}
		return pushDir(ctx, cfg, fs.Arg(0), *comment, *dryRun, stdout)
	case "list":
		h, err := loadSchemas(ctx, cfg)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tCREATED\tBY\tSOURCE\tTYPES\tCOMMENT")
		for _, v := range h.Versions {
			r, _ := registry.FromDescriptorSet(v.GetFiles(), v.GetVersion())
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.GetVersion(), v.GetCreatedAt().AsTime().UTC().Format(time.RFC3339),
				v.GetCreatedBy(), v.GetSource(), r.String(), v.GetComment())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(h.Versions) == 0 {
			fmt.Fprintf(stdout, "no version on %s: the services run the built-in examples (version 0)\n", cfg.SchemasTopic)
		}
		for _, r := range h.Rejected {
			fmt.Fprintf(stdout, "ignored record at offset %d: %v\n", r.Offset, r.Err)
		}
		return nil
	case "show":
		if len(args) != 2 {
			return errors.New("usage: clickstream schemas show VERSION")
		}
		h, err := loadSchemas(ctx, cfg)
		if err != nil {
			return err
		}
		r, err := versionOf(h, args[1])
		if err != nil {
			return err
		}
		showRegistry(stdout, r)
		return nil
	case "diff":
		if len(args) != 3 {
			return errors.New("usage: clickstream schemas diff A B")
		}
		h, err := loadSchemas(ctx, cfg)
		if err != nil {
			return err
		}
		a, err := versionOf(h, args[1])
		if err != nil {
			return err
		}
		b, err := versionOf(h, args[2])
		if err != nil {
			return err
		}
		lines := registry.Diff(a, b)
		if len(lines) == 0 {
			fmt.Fprintln(stdout, "no changes")
		}
		for _, l := range lines {
			fmt.Fprintln(stdout, l)
		}
		return nil
	}
	return fmt.Errorf("unknown schemas command %q: push, list, show or diff", args[0])
}

// schemaClientOpts are the client options of the all-in-one command's Kafka settings.
func schemaClientOpts(cfg Config) []kgo.Opt {
	return kafka.ClientOpts(cfg.Kafka, telemetry.NewLogger(cfg.Telemetry, io.Discard, "clickstream"), nil, "")
}

// connect is an admin/producer client of the all-in-one command's Kafka settings, once a broker
// answers (within ctx), and the options it was built from (for the schema topic's readers).
func connect(ctx context.Context, cfg Config) (*kgo.Client, []kgo.Opt, error) {
	opts := schemaClientOpts(cfg)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := kafka.WaitForBrokers(ctx, cl); err != nil {
		cl.Close()
		return nil, nil, err
	}
	return cl, opts, nil
}

func loadSchemas(ctx context.Context, cfg Config) (*schemastore.History, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, opts, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return schemastore.Load(ctx, opts, cfg.SchemasTopic)
}

// versionOf is the registry of version arg; 0 is the built-in examples.
func versionOf(h *schemastore.History, arg string) (*registry.Registry, error) {
	n, err := strconv.ParseUint(arg, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("version %q: not a number", arg)
	}
	if n == 0 {
		return registry.Default(), nil
	}
	sv, ok := h.Find(uint32(n))
	if !ok {
		return nil, fmt.Errorf("no version %d (the topic has %d applied versions)", n, len(h.Versions))
	}
	return registry.FromDescriptorSet(sv.GetFiles(), sv.GetVersion())
}

// pushDir compiles dir and appends it as the next version (see pushSet).
func pushDir(ctx context.Context, cfg Config, dir, comment string, dryRun bool, stdout io.Writer) error {
	set, err := compile.Dir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if dryRun {
		r, err := compile.Check(set, 1)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s compiles: %d files, types %s (dry run: nothing checked against the topic, nothing pushed)\n", dir, len(set.GetFile()), r)
		return nil
	}
	return pushSet(ctx, cfg, set, dir, comment, stdout)
}

// pushSet appends set as the next version when it is compatible with the latest one, after
// creating the topics of its types. An unchanged set appends nothing.
func pushSet(ctx context.Context, cfg Config, set *descriptorpb.FileDescriptorSet, source, comment string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, opts, err := connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	sv := &clickstreamv1.SchemaVersion{
		Files: set, CreatedAt: timestamppb.Now(), CreatedBy: whoAmI(), Source: source, Comment: comment,
	}
	reg, pushed, err := schemastore.Push(ctx, cl, opts, cfg.SchemasTopic, cfg.Topics.ReplicationFactor, sv, func(r *registry.Registry) error {
		return kafka.EnsureTopics(ctx, cl, cfg.Topics, kafka.ContractTopics(cfg.TopicPattern, cfg.DLQTopic, r.Names())...)
	})
	if err != nil {
		return err
	}
	if !pushed {
		fmt.Fprintf(stdout, "%s is unchanged from version %d: nothing pushed\n", source, reg.Version())
		return nil
	}
	fmt.Fprintf(stdout, "pushed version %d to %s: types %s\n", reg.Version(), cfg.SchemasTopic, reg)
	return nil
}

func whoAmI() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// showRegistry prints the event types of r and the fields of their messages.
func showRegistry(w io.Writer, r *registry.Registry) {
	fmt.Fprintf(w, "version %d\n", r.Version())
	for _, et := range r.Types() {
		fmt.Fprintf(w, "\ntype %s = %s", et.Name, et.Message.FullName())
		if et.IDField != nil {
			fmt.Fprintf(w, " (id %s)", et.IDField.Name())
		}
		if et.TimeField != nil {
			fmt.Fprintf(w, " (time %s)", et.TimeField.Name())
		}
		fmt.Fprintln(w)
		showMessage(w, et.Message, "  ", map[protoreflect.FullName]bool{})
	}
}

func showMessage(w io.Writer, md protoreflect.MessageDescriptor, indent string, seen map[protoreflect.FullName]bool) {
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		fmt.Fprintf(w, "%s%s %s = %d\n", indent, fieldType(fd), fd.Name(), fd.Number())
		if m := fd.Message(); m != nil && !fd.IsMap() && m.ParentFile().Path() != "google/protobuf/timestamp.proto" {
			showMessage(w, m, indent+"  ", seen)
		}
	}
}

func fieldType(fd protoreflect.FieldDescriptor) string {
	name := func(fd protoreflect.FieldDescriptor) string {
		switch {
		case fd.Message() != nil:
			return string(fd.Message().FullName())
		case fd.Enum() != nil:
			return string(fd.Enum().FullName())
		}
		return fd.Kind().String()
	}
	switch {
	case fd.IsMap():
		return fmt.Sprintf("map<%s, %s>", name(fd.MapKey()), name(fd.MapValue()))
	case fd.IsList():
		return "repeated " + name(fd)
	case fd.HasOptionalKeyword():
		return "optional " + name(fd)
	}
	return strings.TrimSpace(name(fd))
}
