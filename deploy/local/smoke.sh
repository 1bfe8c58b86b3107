#!/usr/bin/env bash
# Smoke test of the local real stack: proves each component really works, end to end.
#   Kafka   create a topic, produce one record, consume it back (Kafka's own console tools)
#   HDFS    write a file and read it back (Hadoop's FsShell: NameNode RPC + DataNode transfer)
#   HMS     Thrift calls: get_all_databases lists the schema Trino created, get_table_req (the call
#           Hive 4 keeps) shows the table as EXTERNAL_TABLE, Parquet, at the lake location
#   Trino   CREATE SCHEMA + EXTERNAL partitioned Parquet table on HDFS in the hive catalog,
#           INSERT a row, SELECT it back
#   Spark   read the same table by name through the metastore (isolated Hive 4.1 client)
#
# usage: deploy/local/smoke.sh        (after deploy/local/stack.sh up; same environment overrides)
# Prints one "ok" line per check; exits non-zero at the first failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="$HERE/stack.sh"
eval "$("$STACK" env)"
INFRA="$CLICKSTREAM_INFRA_DIR"
PYTHON="${CLICKSTREAM_PYTHON:-python3}"
RUN_ID="$(date +%s)-$$"
T0=$SECONDS

step() { printf '[smoke %3ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
ok() { printf 'ok   %-6s %s\n' "$1" "$2"; }
fail() { printf 'FAIL %-6s %s\n' "$1" "$2"; exit 1; }

java17() {
  # the same JDK 17 stack.sh uses for Kafka and HDFS: read it from the running broker's environment
  local pid jh
  pid="$(cat "$INFRA/run/kafka.pid" 2>/dev/null || cat "$INFRA/run/namenode.pid")"
  jh="$(tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^JAVA_HOME=//p')"
  echo "$jh/bin/java"
}
JAVA="$(java17)"

STATUS="$("$STACK" status)"
echo "$STATUS" >&2
for c in kafka namenode datanode hms trino; do
  grep -Eq "^$c +up " <<<"$STATUS" || fail "$c" "not running: run deploy/local/stack.sh up first"
done

# ---------------------------------------------------------------- Kafka
step "kafka: topic, produce, consume"
KAFKA_CP="$INFRA/kafka/lib/*"
KAFKA_OPTS=(-Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$INFRA/conf/kafka/tools-log4j2.properties")
TOPIC="smoke-$RUN_ID"
"$JAVA" "${KAFKA_OPTS[@]}" -cp "$KAFKA_CP" org.apache.kafka.tools.TopicCommand \
  --bootstrap-server "$CLICKSTREAM_KAFKA_BROKERS" --create --topic "$TOPIC" --partitions 1 --replication-factor 1 >/dev/null
VALUE="hello-$RUN_ID"
echo "$VALUE" | "$JAVA" "${KAFKA_OPTS[@]}" -cp "$KAFKA_CP" org.apache.kafka.tools.ConsoleProducer \
  --bootstrap-server "$CLICKSTREAM_KAFKA_BROKERS" --topic "$TOPIC" --producer-property acks=all
GOT="$("$JAVA" "${KAFKA_OPTS[@]}" -cp "$KAFKA_CP" org.apache.kafka.tools.consumer.ConsoleConsumer \
  --bootstrap-server "$CLICKSTREAM_KAFKA_BROKERS" --topic "$TOPIC" --from-beginning --max-messages 1 \
  --timeout-ms 30000 --group "smoke-$RUN_ID" 2>/dev/null)"
[[ "$GOT" == "$VALUE" ]] || fail kafka "consumed '$GOT', want '$VALUE'"
"$JAVA" "${KAFKA_OPTS[@]}" -cp "$KAFKA_CP" org.apache.kafka.tools.TopicCommand \
  --bootstrap-server "$CLICKSTREAM_KAFKA_BROKERS" --delete --topic "$TOPIC" >/dev/null
ok kafka "topic $TOPIC: produced and consumed '$VALUE' (consumer group smoke-$RUN_ID)"

# ---------------------------------------------------------------- HDFS
step "hdfs: put, cat"
fs() {
  HADOOP_USER_NAME="$CLICKSTREAM_HDFS_USER" "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 \
    -Djava.net.preferIPv4Stack=true -Dhadoop.root.logger=WARN,console \
    -cp "$INFRA/conf/hadoop:$INFRA/hdfs/lib/*" org.apache.hadoop.fs.FsShell "$@"
}
DIR="/tmp/clickstream-smoke-$RUN_ID"
FILE="$DIR/hello.txt"
TEXT="hdfs smoke $RUN_ID"
fs -mkdir -p "$CLICKSTREAM_HDFS_URI$DIR"
echo "$TEXT" | fs -put -f - "$CLICKSTREAM_HDFS_URI$FILE"
GOT="$(fs -cat "$CLICKSTREAM_HDFS_URI$FILE")"
[[ "$GOT" == "$TEXT" ]] || fail hdfs "read '$GOT', want '$TEXT'"
fs -rm -r -skipTrash "$CLICKSTREAM_HDFS_URI$DIR" >/dev/null
ok hdfs "wrote and read $CLICKSTREAM_HDFS_URI$FILE"

# ---------------------------------------------------------------- Trino (hive catalog)
step "trino: schema, external Parquet table, insert, select"
sql() { "$PYTHON" "$HERE/tools/trino_sql.py" --server "$CLICKSTREAM_TRINO_URL" --user smoke "$1"; }
SCHEMA_LOC="$CLICKSTREAM_WAREHOUSE_URI/smoke.db"
TABLE_LOC="$SCHEMA_LOC/events"
# an external table keeps its files when dropped: start from an empty directory
sql "DROP TABLE IF EXISTS hive.smoke.events" >/dev/null
fs -rm -r -f -skipTrash "$TABLE_LOC" >/dev/null
fs -mkdir -p "$TABLE_LOC"
sql "CREATE SCHEMA IF NOT EXISTS hive.smoke WITH (location = '$SCHEMA_LOC')" >/dev/null
sql "CREATE TABLE hive.smoke.events (event_id varchar, n bigint, ts timestamp(3), dt varchar)
     WITH (format = 'PARQUET', external_location = '$TABLE_LOC', partitioned_by = ARRAY['dt'])" >/dev/null
sql "INSERT INTO hive.smoke.events VALUES ('$RUN_ID', 42, TIMESTAMP '2026-11-01 13:14:15.123', '2026-11-01')" >/dev/null
GOT="$(sql "SELECT event_id, n, CAST(ts AS varchar) AS ts, dt FROM hive.smoke.events")"
WANT="{\"event_id\": \"$RUN_ID\", \"n\": 42, \"ts\": \"2026-11-01 13:14:15.123\", \"dt\": \"2026-11-01\"}"
[[ "$GOT" == "$WANT" ]] || fail trino "got '$GOT', want '$WANT'"
ok trino "hive.smoke.events (external, Parquet, partitioned by dt at $TABLE_LOC): $GOT"

# ---------------------------------------------------------------- Hive Metastore
step "hms: thrift get_all_databases, get_table_req"
HMS=("$PYTHON" "$HERE/tools/hms_ping.py" --port "${CLICKSTREAM_HMS_ADDR##*:}")
DBS="$("${HMS[@]}" | tr '\n' ' ')"
[[ " $DBS " == *" smoke "* ]] || fail hms "databases are '$DBS', want smoke among them"
TABLE="$("${HMS[@]}" --table smoke.events)"
for want in '"tableType": "EXTERNAL_TABLE"' "\"location\": \"$TABLE_LOC\"" '"EXTERNAL": "TRUE"' \
  '"serde": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"' '"partitionKeys": [{"name": "dt", "type": "string"}]'; do
  [[ "$TABLE" == *"$want"* ]] || fail hms "get_table_req smoke.events lacks $want: $TABLE"
done
ok hms "get_all_databases: $DBS; get_table_req smoke.events: EXTERNAL_TABLE, Parquet, partitioned by dt"

# ---------------------------------------------------------------- Spark
step "spark: read the table by name through the metastore"
GOT="$("$STACK" spark-sql "SELECT event_id, n, CAST(ts AS string) AS ts, dt FROM smoke.events" 2>"$INFRA/logs/smoke-spark.log")" ||
  { tail -30 "$INFRA/logs/smoke-spark.log"; fail spark "spark-sql failed (log: $INFRA/logs/smoke-spark.log)"; }
WANT="{\"event_id\": \"$RUN_ID\", \"n\": 42, \"ts\": \"2026-11-01 13:14:15.123\", \"dt\": \"2026-11-01\"}"
[[ "$GOT" == "$WANT" ]] || fail spark "got '$GOT', want '$WANT' (log: $INFRA/logs/smoke-spark.log)"
ok spark "smoke.events via the metastore: $GOT"

# ---------------------------------------------------------------- cleanup (drop_table, drop_database)
step "cleanup: drop table and schema"
sql "DROP TABLE hive.smoke.events" >/dev/null
sql "DROP SCHEMA hive.smoke" >/dev/null
fs -rm -r -f -skipTrash "$SCHEMA_LOC" >/dev/null
DBS="$("${HMS[@]}" | tr '\n' ' ')"
[[ " $DBS " != *" smoke "* ]] || fail hms "schema smoke still listed after DROP SCHEMA: $DBS"
ok hms "dropped hive.smoke.events and schema smoke"

step "all checks passed"
echo "smoke: 6 passed, 0 failed"
