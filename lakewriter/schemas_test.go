package lakewriter

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	clickstreamv1 "github.com/clickstream/clickstream/schemas/gen/clickstream/v1"
	"github.com/clickstream/clickstream/schemas/registry"
	"github.com/clickstream/clickstream/schemas/registry/registrytest"
	"github.com/clickstream/clickstream/schemas/samples"
	"github.com/clickstream/clickstream/services/kafka"
	"github.com/clickstream/clickstream/services/lake"
	"github.com/clickstream/clickstream/services/lake/laketest"
	"github.com/clickstream/clickstream/services/schemastore"
)

// checkoutType is an event type no .proto of the repository declares, as a team's push brings it.
var checkoutType = registrytest.NewType{Type: "checkout", Message: "CheckoutStarted", IDField: "checkout_id", Fields: []registrytest.Field{
	{Name: "checkout_id", Number: 1, Type: descriptorpb.FieldDescriptorProto_TYPE_STRING},
	{Name: "amount", Number: 2, Type: descriptorpb.FieldDescriptorProto_TYPE_INT64},
}}

// withFields is the example schemas as version v plus a top-level field (PageView.coupon) and a
// field inside a struct (Card.issuer: purchase's card column).
func withFields(t *testing.T, v uint32) *registry.Registry {
	t.Helper()
	set := registry.DefaultDescriptorSet()
	add := func(message, field string, number int32) {
		for _, f := range set.File {
			for _, m := range f.MessageType {
				if f.GetPackage()+"."+m.GetName() == message {
					m.Field = append(m.Field, &descriptorpb.FieldDescriptorProto{
						Name: proto.String(field), Number: proto.Int32(number), JsonName: proto.String(field),
						Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
					})
					return
				}
			}
		}
		t.Fatalf("no message %s in the example schemas", message)
	}
	add("clickstream.events.v1.PageView", "coupon", 11)
	add("clickstream.events.v1.Card", "issuer", 3)
	r, err := registry.FromDescriptorSet(set, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// eventOf is event i of typ as reg's message: the sample event, with the fields withFields adds
// set when reg has them; for a type without samples, its string fields "<typ>-<i>" and its
// integers i.
func eventOf(t *testing.T, reg *registry.Registry, typ string, i int, at time.Time) proto.Message {
	t.Helper()
	et, ok := reg.Lookup(typ)
	if !ok {
		t.Fatalf("no type %s in version %d", typ, reg.Version())
	}
	m := dynamicpb.NewMessage(et.Message)
	fields := et.Message.Fields()
	if slices.Contains(samples.Types, typ) {
		if err := proto.Unmarshal(samples.Marshal(samples.Event(typ, i, at)), m); err != nil {
			t.Fatal(err)
		}
		if fd := fields.ByName("coupon"); fd != nil && typ == "page_view" {
			m.Set(fd, protoreflect.ValueOfString(fmt.Sprintf("SAVE%d", i)))
		}
		if fd := fields.ByName("card"); fd != nil && m.Has(fd) {
			card := m.Mutable(fd).Message()
			if issuer := card.Descriptor().Fields().ByName("issuer"); issuer != nil {
				card.Set(issuer, protoreflect.ValueOfString("bank-"+strconv.Itoa(i)))
			}
		}
		return m
	}
	for j := range fields.Len() {
		switch fd := fields.Get(j); fd.Kind() {
		case protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(fmt.Sprintf("%s-%d", typ, i)))
		case protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(int64(i)))
		}
	}
	return m
}

// sendEvents produces n events of typ as reg's messages, from at a minute apart, in one
// transaction; version > 0 adds the schema_version header the validator sets.
func (p *producer) sendEvents(reg *registry.Registry, typ string, at time.Time, n int, version uint32) {
	p.t.Helper()
	var recs []*kgo.Record
	var msgs []proto.Message
	for range n {
		i := p.seq
		p.seq++
		ts := at.Add(time.Duration(len(recs)) * time.Minute)
		m := eventOf(p.t, reg, typ, i, ts)
		h := headers(i, ts, typ, string(m.ProtoReflect().Descriptor().FullName()))
		if version > 0 {
			h = append(h, kgo.RecordHeader{Key: kafka.HeaderSchemaVersion, Value: []byte(strconv.FormatUint(uint64(version), 10))})
		}
		recs = append(recs, &kgo.Record{Topic: kafka.ValidTopic(typ), Partition: int32(i % testPartitions),
			Key: []byte(fmt.Sprintf("conn-%d", i%4)), Value: samples.Marshal(m), Timestamp: ts, Headers: h})
		msgs = append(msgs, m)
	}
	p.produce(recs, msgs)
}

func startKafkaWith(t *testing.T, extra ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, append(allTopics(), extra...)...),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// metastoreConfig points cfg at the fake metastore with fast retries.
func metastoreConfig(cfg Config, ms *laketest.Metastore) Config {
	cfg.Lake.MetastoreURI = ms.URI()
	cfg.Lake.MetastoreRetries = 0
	cfg.RegisterRetryMax = 50 * time.Millisecond
	return cfg
}

func columnNames(cols []lake.Column) []string {
	var out []string
	for _, c := range cols {
		out = append(out, c.Name)
	}
	return out
}

// openWriters returns, per table, how many topic-partitions have records not yet committed.
func (in *instance) openWriters() map[string]int {
	in.lw.mu.Lock()
	defer in.lw.mu.Unlock()
	out := map[string]int{}
	for _, w := range in.lw.tps {
		if w.pending {
			out[w.schema.Table]++
		}
	}
	return out
}

// TestSchemaVersionAddsType: a version pushed to the schema topic while the lakewriter runs adds
// an event type whose topic already holds records (written by a validator that had the type
// before the lakewriter): the topic, paused while the type was unknown, is resumed from the
// lake's position, its records land in a new table, and the table and its partitions are
// registered; later records carrying schema_version land too.
func TestSchemaVersionAddsType(t *testing.T) {
	t.Parallel()
	topic := kafka.ValidTopic(checkoutType.Type)
	c := startKafkaWith(t, topic)
	ms := laketest.StartMetastore(t)
	p := newProducer(t, c)
	v1 := registrytest.ExamplesPlus(t, 1, checkoutType)
	p.want.versions = map[uint32]*registry.Registry{0: registry.Default(), 1: v1}
	dir := t.TempDir()
	cfg := metastoreConfig(testConfig(c, dir), ms)
	cfg.FileSize = 1 // commit after every batch
	in := start(t, cfg, nil)

	p.sendEvents(v1, checkoutType.Type, base, 6, 0) // no header: an older validator
	p.send(base, time.Minute, 1, false)
	waitFor(t, "the topic of the unknown type paused", func() bool {
		in.lw.mu.Lock()
		cl := in.lw.cl
		in.lw.mu.Unlock()
		return cl != nil && slices.Contains(cl.PauseFetchTopics(), topic)
	})
	waitFor(t, "the known types consumed", func() bool {
		in.lw.mu.Lock()
		defer in.lw.mu.Unlock()
		for k, next := range p.want.next {
			if w := in.lw.tps[k]; k.topic != topic && (w == nil || w.next < next) {
				return false
			}
		}
		return true
	})
	if tbl := ms.Table("clickstream", checkoutType.Type); tbl != nil {
		t.Fatalf("table of an unknown type created: %+v", tbl)
	}

	// Push version 1 the way `clickstream schemas push` does.
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	if err := schemastore.EnsureTopic(ctx, admin, schemastore.DefaultTopic, 1); err != nil {
		t.Fatal(err)
	}
	if err := schemastore.Append(ctx, admin, schemastore.DefaultTopic, &clickstreamv1.SchemaVersion{Version: 1, Files: v1.DescriptorSet()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the records of the new type consumed", func() bool { return in.caughtUp(p.want) })
	p.sendEvents(v1, checkoutType.Type, base.Add(time.Hour), 4, 1)
	waitFor(t, "the records of version 1 consumed", func() bool { return in.caughtUp(p.want) })
	waitFor(t, "the new table's partitions registered", func() bool {
		return len(ms.Partitions("clickstream", checkoutType.Type)) == 2 &&
			counter(t, in.reg, "clickstream_lakewriter_partitions_pending_registration") == 0
	})
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	files := checkLake(t, dir, p.want)
	n := 0
	for _, f := range files {
		if strings.HasPrefix(f, "clickstream.db/checkout/") {
			n++
		}
	}
	if n == 0 {
		t.Error("no file in the new table")
	}
	tbl := ms.Table("clickstream", checkoutType.Type)
	want := []string{"checkout_id", "amount", ColReceivedAt, ColReqGUID, ColEventIndex, ColConnGroup, ColKafkaPartition, ColKafkaOffset, ColReplayedFromDLQ}
	var got []string
	for _, c := range tbl.Sd.Cols {
		got = append(got, c.Name)
	}
	if !slices.Equal(got, want) || tbl.TableType != "EXTERNAL_TABLE" ||
		tbl.Sd.Location != "file:"+filepath.ToSlash(filepath.Join(dir, "clickstream.db", checkoutType.Type)) {
		t.Errorf("new table: columns %q (want %q), type %s, location %s", got, want, tbl.TableType, tbl.Sd.Location)
	}
	if got := labeled(t, in.reg, "clickstream_lakewriter_schema_changes_total", "change", changeTableAdded); got != 1 {
		t.Errorf("schema_changes_total{change=table_added} = %v, want 1", got)
	}
	if got := counter(t, in.reg, "clickstream_lakewriter_tables_schema_version"); got != 1 {
		t.Errorf("tables_schema_version = %v, want 1", got)
	}
}

// TestSchemaVersionAddsFields: a version adds a top-level field (page_view.coupon) and a field
// inside a struct (purchase's card.issuer). The open files of those two tables are committed
// (rotated) without the new columns before any row of the new schema is written; the other
// tables' files stay open; new files have the columns, filled from the records; the metastore
// tables gain the columns (appended, cascaded to the partitions).
func TestSchemaVersionAddsFields(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	ms := laketest.StartMetastore(t)
	p := newProducer(t, c)
	v2 := withFields(t, 2)
	p.want.versions = map[uint32]*registry.Registry{0: registry.Default(), 2: v2}
	dir := t.TempDir()
	cfg := metastoreConfig(testConfig(c, dir), ms)
	live := schemastore.Static(registry.Default())
	in := startLive(t, cfg, live, nil)

	p.send(base, time.Minute, 4, false) // hour 13, every table
	waitFor(t, "records written", func() bool { return in.caughtUp(p.want) })
	before := in.openWriters()
	for _, table := range []string{"page_view", "purchase", "click"} {
		if before[table] == 0 {
			t.Fatalf("fixture: no open file of %s (%v)", table, before)
		}
	}

	live.Publish(v2)
	waitFor(t, "version 2 in force", func() bool { return counter(t, in.reg, "clickstream_lakewriter_tables_schema_version") == 2 })
	after := in.openWriters()
	for table, n := range before {
		switch table {
		case "page_view", "purchase":
			if after[table] != 0 {
				t.Errorf("%s: %d topic-partitions still open after its schema changed", table, after[table])
			}
		default:
			if after[table] != n {
				t.Errorf("%s: %d open topic-partitions, %d before: an unchanged table rotated", table, after[table], n)
			}
		}
	}
	if got, want := labeled(t, in.reg, "clickstream_lakewriter_commits_total", "reason", "schema"), float64(before["page_view"]+before["purchase"]); got != want {
		t.Errorf("commits_total{reason=schema} = %v, want %v", got, want)
	}
	if got := labeled(t, in.reg, "clickstream_lakewriter_schema_changes_total", "change", changeColumnsAdded); got != 2 {
		t.Errorf("schema_changes_total{change=columns_added} = %v, want 2", got)
	}

	for _, typ := range []string{"page_view", "purchase"} {
		p.sendEvents(v2, typ, base.Add(10*time.Minute), 4, 2)
	}
	waitFor(t, "records of version 2 written", func() bool { return in.caughtUp(p.want) })
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	files := checkLake(t, dir, p.want) // each file has the columns of the version it carries
	versions := map[string][]string{}
	for _, f := range files {
		r, err := lake.Local{}.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		_, pf := readParquet(t, r, r.Size())
		r.Close()
		v, _ := pf.Lookup(MetaSchemaVersion)
		table := strings.Split(f, "/")[1]
		versions[table] = append(versions[table], v)
	}
	for table, vs := range versions {
		slices.Sort(vs)
		vs = slices.Compact(vs)
		want := []string{"2"} // open across the switch, committed at shutdown with the same layout
		if table == "page_view" || table == "purchase" {
			want = []string{"0", "2"} // rotated at the switch, then new files
		}
		if !slices.Equal(vs, want) {
			t.Errorf("%s: files of schema versions %q, want %q", table, vs, want)
		}
	}

	for table, col := range map[string]string{"page_view": "coupon string", "purchase": "card struct<brand:string,last4:string,issuer:string>"} {
		tbl := ms.Table("clickstream", table)
		var cols []string
		for _, c := range tbl.Sd.Cols {
			cols = append(cols, c.Name+" "+c.Type)
		}
		if !slices.Contains(cols, col) {
			t.Errorf("metastore %s: columns %q lack %q", table, cols, col)
		}
		if table == "page_view" && cols[len(cols)-1] != col {
			t.Errorf("metastore %s: new column not appended last: %q", table, cols)
		}
		part := ms.Partition("clickstream", table, []string{"2026-11-22", "13"})
		if part == nil || len(part.Sd.Cols) != len(tbl.Sd.Cols) {
			t.Errorf("metastore %s partition 13: %+v, want the table's %d columns", table, part, len(tbl.Sd.Cols))
		}
	}
}

// TestRecordWaitsForItsSchemaVersion: a record validated under a version the lakewriter has not
// read yet is not written until that version is in force, and then with its new field.
func TestRecordWaitsForItsSchemaVersion(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	p := newProducer(t, c)
	v3 := withFields(t, 3)
	p.want.versions = map[uint32]*registry.Registry{0: registry.Default(), 3: v3}
	dir := t.TempDir()
	cfg := testConfig(c, dir)
	cfg.FileSize = 1
	live := schemastore.Static(registry.Default())
	in := startLive(t, cfg, live, nil)

	p.sendEvents(v3, "page_view", base, 3, 3)
	waitFor(t, "the batch held back", func() bool { return counter(t, in.reg, "clickstream_lakewriter_schema_waits_total") == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := counter(t, in.reg, "clickstream_lakewriter_records_consumed_total"); got != 0 {
		t.Fatalf("%v records consumed before their schema version was read", got)
	}
	live.Publish(v3)
	waitFor(t, "records written", func() bool { return in.caughtUp(p.want) })
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	files := checkLake(t, dir, p.want) // the coupon column holds the records' values
	if len(files) == 0 {
		t.Fatal("nothing landed")
	}
}

// TestSchemaVersionChangingNothing: version 1 holding the same example schemas as the built-in
// version 0 rotates nothing and alters no table; files open across the switch are committed
// later with version 1 in their metadata.
func TestSchemaVersionChangingNothing(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	ms := laketest.StartMetastore(t)
	p := newProducer(t, c)
	v1, err := registry.FromDescriptorSet(registry.DefaultDescriptorSet(), 1)
	if err != nil {
		t.Fatal(err)
	}
	p.want.versions = map[uint32]*registry.Registry{0: registry.Default(), 1: v1}
	dir := t.TempDir()
	cfg := metastoreConfig(testConfig(c, dir), ms)
	live := schemastore.Static(registry.Default())
	in := startLive(t, cfg, live, nil)
	waitFor(t, "tables created", func() bool { return counter(t, in.reg, "clickstream_lakewriter_partitions_pending_registration") == 0 })

	p.send(base, time.Minute, 3, false)
	waitFor(t, "records written", func() bool { return in.caughtUp(p.want) })
	before := in.openWriters()
	live.Publish(v1)
	waitFor(t, "version 1 in force", func() bool { return counter(t, in.reg, "clickstream_lakewriter_tables_schema_version") == 1 })
	if after := in.openWriters(); !mapsEqual(before, after) {
		t.Errorf("open topic-partitions %v after the switch, %v before", after, before)
	}
	p.send(base.Add(5*time.Minute), time.Minute, 2, false)
	waitFor(t, "more records written", func() bool { return in.caughtUp(p.want) })
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clickstream_lakewriter_commits_total", "clickstream_lakewriter_schema_changes_total"} {
		if got := labeled(t, in.reg, name, "reason", "schema") + labeled(t, in.reg, name, "change", changeColumnsAdded); got != 0 {
			t.Errorf("%s: %v", name, got)
		}
	}
	if n := ms.Calls("alter_table_with_environment_context"); n != 0 {
		t.Errorf("%d table alterations for a version that changes nothing", n)
	}
	for _, f := range checkLake(t, dir, p.want) {
		r, err := lake.Local{}.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		_, pf := readParquet(t, r, r.Size())
		r.Close()
		if v, _ := pf.Lookup(MetaSchemaVersion); v != "1" {
			t.Errorf("%s: schema version %q, want 1 (committed after the switch)", f, v)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestExistingTableGainsReplayedColumn: a table registered by an earlier lakewriter, without
// _replayed_from_dlq, gains it at start through the same alter path as new fields (appended,
// cascaded to its partitions).
func TestExistingTableGainsReplayedColumn(t *testing.T) {
	t.Parallel()
	c := startKafka(t)
	ms := laketest.StartMetastore(t)
	dir := t.TempDir()
	schemas, err := TableSchemas(registry.Default())
	if err != nil {
		t.Fatal(err)
	}
	old := schemas[slices.IndexFunc(schemas, func(s *Schema) bool { return s.Table == "page_view" })].Columns
	old = old[:len(old)-1] // without _replayed_from_dlq
	if old[len(old)-1].Name != ColKafkaOffset {
		t.Fatalf("fixture: %q", columnNames(old))
	}
	client, err := lake.NewThriftMetastore(ms.URI(), lake.MetastoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := context.Background()
	loc := "file:" + filepath.ToSlash(filepath.Join(dir, "clickstream.db"))
	if err := client.EnsureDatabase(ctx, "clickstream", loc); err != nil {
		t.Fatal(err)
	}
	if err := client.CreateTable(ctx, lake.Table{Database: "clickstream", Name: "page_view", Location: loc + "/page_view", Columns: old, PartitionKeys: lake.PartitionKeys}); err != nil {
		t.Fatal(err)
	}
	part := []string{"2026-11-21", "10"}
	if err := client.AddPartitions(ctx, "clickstream", "page_view", []lake.PartitionInfo{{Values: part, Location: loc + "/page_view/dt=2026-11-21/hour=10"}}); err != nil {
		t.Fatal(err)
	}

	in := start(t, metastoreConfig(testConfig(c, dir), ms), nil)
	want := append(columnNames(old), ColReplayedFromDLQ)
	waitFor(t, "the table altered", func() bool {
		got, err := client.GetTable(ctx, "clickstream", "page_view")
		return err == nil && len(got.Columns) == len(want)
	})
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetTable(ctx, "clickstream", "page_view")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(columnNames(got.Columns), want) || got.Columns[len(want)-1].Type != "boolean" {
		t.Errorf("columns %+v, want %q", got.Columns, want)
	}
	if p := ms.Partition("clickstream", "page_view", part); p == nil || len(p.Sd.Cols) != len(want) {
		t.Errorf("partition: %+v, want %d columns", p, len(want))
	}
}

// TestCatalogNext classifies what a version changes in each table.
func TestCatalogNext(t *testing.T) {
	t.Parallel()
	v0, err := newCatalog(registry.Default(), kafka.ValidTopicRegex, kafka.DefaultDLQTopic)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(version uint32, fn func(set *descriptorpb.FileDescriptorSet)) *registry.Registry {
		set := registry.DefaultDescriptorSet()
		fn(set)
		r, err := registry.FromDescriptorSet(set, version)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	message := func(set *descriptorpb.FileDescriptorSet, name string) *descriptorpb.DescriptorProto {
		for _, f := range set.File {
			for _, m := range f.MessageType {
				if m.GetName() == name {
					return m
				}
			}
		}
		t.Fatalf("no message %s", name)
		return nil
	}
	field := func(m *descriptorpb.DescriptorProto, name string) *descriptorpb.FieldDescriptorProto {
		for _, f := range m.Field {
			if f.GetName() == name {
				return f
			}
		}
		t.Fatalf("no field %s", name)
		return nil
	}
	tests := []struct {
		name    string
		reg     *registry.Registry
		added   []string
		changed map[string]string
	}{
		{"same schemas", edit(1, func(*descriptorpb.FileDescriptorSet) {}), nil, map[string]string{}},
		{"fields added", withFields(t, 2), nil, map[string]string{"page_view": changeColumnsAdded, "purchase": changeColumnsAdded}},
		{"type added", registrytest.ExamplesPlus(t, 3, checkoutType), []string{"checkout"}, map[string]string{}},
		{"enum value added", edit(4, func(set *descriptorpb.FileDescriptorSet) {
			for _, f := range set.File {
				for _, e := range f.EnumType {
					if e.GetName() == "Platform" {
						e.Value = append(e.Value, &descriptorpb.EnumValueDescriptorProto{Name: proto.String("PLATFORM_TV"), Number: proto.Int32(9)})
					}
				}
			}
		}), nil, map[string]string{}},
		{"field dropped", edit(5, func(set *descriptorpb.FileDescriptorSet) {
			m := message(set, "Click")
			m.Field = slices.DeleteFunc(m.Field, func(f *descriptorpb.FieldDescriptorProto) bool { return f.GetName() == "button" })
		}), nil, map[string]string{"click": changeColumnsDropped}},
		{"field retyped", edit(6, func(set *descriptorpb.FileDescriptorSet) {
			field(message(set, "Click"), "x").Type = descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
		}), nil, map[string]string{"click": changeColumnsRetyped}},
		{"id field changed", edit(7, func(set *descriptorpb.FileDescriptorSet) {
			m := message(set, "Click")
			opts := proto.GetExtension(m.Options, clickstreamv1.E_Event).(*clickstreamv1.EventOptions)
			opts = proto.CloneOf(opts)
			opts.IdField = "session_id"
			proto.SetExtension(m.Options, clickstreamv1.E_Event, opts)
		}), nil, map[string]string{"click": changeOther}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, ch, err := v0.next(tt.reg)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ch.added, tt.added) || !mapsEqualString(ch.changed, tt.changed) || len(ch.removed) != 0 {
				t.Errorf("added %q changed %v removed %q, want added %q changed %v", ch.added, ch.changed, ch.removed, tt.added, tt.changed)
			}
			if next.version != tt.reg.Version() || len(next.ordered) != len(next.tables) || next.ordered[len(next.ordered)-1].Table != lake.DeadLettersTable {
				t.Errorf("catalog: version %d, %d ordered, %d tables", next.version, len(next.ordered), len(next.tables))
			}
			for _, s := range next.ordered {
				if s.Version != tt.reg.Version() {
					t.Errorf("%s: schema version %d", s.Table, s.Version)
				}
			}
		})
	}
	// A type the next version lacks keeps its table and schema.
	v8, _, err := v0.next(registrytest.ExamplesPlus(t, 8, checkoutType))
	if err != nil {
		t.Fatal(err)
	}
	v9, ch, err := v8.next(edit(9, func(*descriptorpb.FileDescriptorSet) {}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.removed, []string{"checkout"}) || v9.tables["checkout"] != v8.tables["checkout"] {
		t.Errorf("removed %q; checkout kept: %v", ch.removed, v9.tables["checkout"] != nil)
	}
}

func mapsEqualString(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestReplayedFromDLQHeader: only the header value "true" sets _replayed_from_dlq.
func TestReplayedFromDLQHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		want    bool
	}{
		{"no header", nil, false},
		{"true", []kgo.RecordHeader{{Key: kafka.HeaderReplayedFromDLQ, Value: []byte("true")}}, true},
		{"false", []kgo.RecordHeader{{Key: kafka.HeaderReplayedFromDLQ, Value: []byte("false")}}, false},
		{"empty", []kgo.RecordHeader{{Key: kafka.HeaderReplayedFromDLQ}}, false},
		{"other header", []kgo.RecordHeader{{Key: kafka.HeaderSchemaVersion, Value: []byte("true")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sysFromRecord(&kgo.Record{Headers: tt.headers}).replayed; got != tt.want {
				t.Errorf("replayed = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDynamicSchemasRows: tables of a version read from the schema topic have dynamic
// descriptors (no generated Go types): the wire path and the reflective fallback (dynamicpb) give
// the same rows for them as for the built-in schemas of the same messages.
func TestDynamicSchemasRows(t *testing.T) {
	t.Parallel()
	dyn, err := registry.FromDescriptorSet(registry.DefaultDescriptorSet(), 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, typ := range samples.Types {
		t.Run(typ, func(t *testing.T) {
			et, _ := registry.Default().Lookup(typ)
			det, _ := dyn.Lookup(typ)
			if det.Message == et.Message || det.GoType() != nil {
				t.Fatal("fixture: the version's descriptors are the built-in ones")
			}
			built, err := NewSchema(typ, et.Message)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewSchema(typ, det.Message)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.newMessage().(*dynamicpb.Message); !ok || !sameLayout(built, s) || !s.wireOK {
				t.Fatalf("dynamic schema: message %T, same layout %v, wire path %v", s.newMessage(), sameLayout(built, s), s.wireOK)
			}
			for i := range 200 {
				data := samples.Marshal(samples.Event(typ, i, at))
				if !wireMatches(t, s, data) { // wire path = reflective path over dynamicpb
					t.Fatalf("#%d: the wire path gave up on a well-formed sample", i)
				}
				want, _ := built.newRowBuilder().rowOf(data, wireSys)
				want = want.Clone()
				got, err := s.newRowBuilder().rowOf(data, wireSys)
				if err != nil || len(got) != len(want) {
					t.Fatalf("#%d: %d values (%v), built-in schema %d", i, len(got), err, len(want))
				}
				for j := range want {
					if !sameValue(got[j], want[j]) {
						t.Fatalf("#%d value %d: %v, built-in schema %v", i, j, got[j], want[j])
					}
				}
			}
		})
	}
}
