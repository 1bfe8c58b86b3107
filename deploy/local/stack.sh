#!/usr/bin/env bash
# The project's real stack on 127.0.0.1, without Docker: Apache Kafka (KRaft, one node), HDFS
# (NameNode + DataNode), Hive Metastore 4.1 (standalone Thrift, embedded Derby), Trino 476 (hive
# catalog) and a pyspark venv. Everything is fetched from Maven Central / PyPI by mvn and pip into
# the git-ignored .infra/ folder and cached there (and in ~/.m2 and pip's cache).
#
# usage: deploy/local/stack.sh COMMAND [component...]
#   up [c...]       fetch what is missing, render configs, start components (and what they need)
#                   in order, wait until each is healthy. Components already running are left alone.
#                   c: kafka | hdfs | hms | trino | spark (spark = the venv only; no daemon).
#                   Without components: all of them.
#   down [c...]     stop components by their saved pids (TERM, wait, then KILL); all by default
#   status          one line per component: up/down, pid, port
#   reset           down + delete data, logs and pids (keeps downloads)
#   fetch [c...]    download only
#   spark-sql [--per-statement] "SQL"...  run SQL on a local SparkSession wired to the metastore and
#                   HDFS (see spark/query.py); prints result rows as JSON lines
#   env             print the addresses as KEY=VALUE lines (set -a; eval "$(stack.sh env)"; set +a)
#   logs            list the log files
#
# Environment overrides (defaults in brackets):
#   CLICKSTREAM_INFRA_DIR      downloads, data, logs, pids        [<repo>/.infra]
#   CLICKSTREAM_JAVA17_HOME    JDK 17 for Kafka, HDFS, metastore, Spark  [auto: JAVA_HOME or
#                              `java` on PATH if it is 17, else /usr/lib/jvm/*17*]
#   CLICKSTREAM_JAVA25_HOME    JDK >= 24 for Trino 476                   [auto: /usr/lib/jvm/*25*, *24*]
#   CLICKSTREAM_KAFKA_PORT [9092]   CLICKSTREAM_KAFKA_CONTROLLER_PORT [9093]
#   CLICKSTREAM_HDFS_PORT [8020]    CLICKSTREAM_HDFS_HTTP_PORT [9870]
#   CLICKSTREAM_DN_PORT [9866]      CLICKSTREAM_DN_HTTP_PORT [9864]   CLICKSTREAM_DN_IPC_PORT [9867]
#   CLICKSTREAM_HMS_PORT [9083]     CLICKSTREAM_TRINO_PORT [8088] (not 8080: the collector's)
#   CLICKSTREAM_WAREHOUSE [/warehouse]  HDFS dir of the lake: the metastore's external warehouse
#                              (metastore.warehouse.external.dir), mode 777
#   CLICKSTREAM_MANAGED_WAREHOUSE [/user/hive/warehouse]  the metastore's managed warehouse (mode 777);
#                              must not contain the lake (Hive 4 refuses external tables under it)
#   CLICKSTREAM_KAFKA_HEAP [512m]  CLICKSTREAM_NN_HEAP [512m]  CLICKSTREAM_DN_HEAP [512m]
#   CLICKSTREAM_HMS_HEAP [1g]      CLICKSTREAM_TRINO_HEAP [2G]  CLICKSTREAM_SPARK_DRIVER_MEMORY [1g]
#   CLICKSTREAM_WAIT_SECONDS [240]  health-wait limit per component
#   CLICKSTREAM_PYSPARK_VERSION [4.1.1]
#   CLICKSTREAM_MVN [mvn]  CLICKSTREAM_MVN_OPTS [] extra mvn arguments (e.g. -Dmaven.repo.local=DIR)
#   CLICKSTREAM_PYTHON [python3]  the Python that creates the pyspark venv and runs the helpers
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
INFRA="${CLICKSTREAM_INFRA_DIR:-$REPO/.infra}"

KAFKA_PORT="${CLICKSTREAM_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${CLICKSTREAM_KAFKA_CONTROLLER_PORT:-9093}"
HDFS_PORT="${CLICKSTREAM_HDFS_PORT:-8020}"
HDFS_HTTP_PORT="${CLICKSTREAM_HDFS_HTTP_PORT:-9870}"
DN_PORT="${CLICKSTREAM_DN_PORT:-9866}"
DN_HTTP_PORT="${CLICKSTREAM_DN_HTTP_PORT:-9864}"
DN_IPC_PORT="${CLICKSTREAM_DN_IPC_PORT:-9867}"
HMS_PORT="${CLICKSTREAM_HMS_PORT:-9083}"
TRINO_PORT="${CLICKSTREAM_TRINO_PORT:-8088}"
WAREHOUSE="${CLICKSTREAM_WAREHOUSE:-/warehouse}"
MANAGED_WAREHOUSE="${CLICKSTREAM_MANAGED_WAREHOUSE:-/user/hive/warehouse}"
KAFKA_HEAP="${CLICKSTREAM_KAFKA_HEAP:-512m}"
NN_HEAP="${CLICKSTREAM_NN_HEAP:-512m}"
DN_HEAP="${CLICKSTREAM_DN_HEAP:-512m}"
HMS_HEAP="${CLICKSTREAM_HMS_HEAP:-1g}"
TRINO_HEAP="${CLICKSTREAM_TRINO_HEAP:-2G}"
WAIT_SECONDS="${CLICKSTREAM_WAIT_SECONDS:-240}"
PYSPARK_VERSION="${CLICKSTREAM_PYSPARK_VERSION:-4.1.1}"
MVN="${CLICKSTREAM_MVN:-mvn}"
read -r -a MVN_OPTS <<<"${CLICKSTREAM_MVN_OPTS:-}"
PYTHON="${CLICKSTREAM_PYTHON:-python3}"

TRINO_VERSION=476
HIVE_VERSION=4.1.0
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
# a fixed KRaft cluster id: the data dir is formatted once and reused
KAFKA_CLUSTER_ID=Y2xpY2tzdHJlYW0tbG9jYQ
USER_NAME="$(id -un)"

LOGS="$INFRA/logs"
RUN="$INFRA/run"
CONF="$INFRA/conf"

# JVM flags for Hadoop and Hive on Java 17 (a superset of what Spark passes to its Hadoop client).
JDK17_OPENS=(-XX:+IgnoreUnrecognizedVMOptions -Djava.net.preferIPv4Stack=true
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.regex=ALL-UNNAMED
  --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/sun.nio.cs=ALL-UNNAMED
  --add-opens=java.base/sun.security.action=ALL-UNNAMED --add-opens=java.base/sun.util.calendar=ALL-UNNAMED
  --add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED)

log() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- JDKs

java_major() { # JAVA_HOME -> major version number, or empty
  local v
  v="$("$1/bin/java" -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')" || true
  echo "${v%%.*}"
}

find_jdk() { # min max explicit-override -> prints a JAVA_HOME
  local min="$1" max="$2" want="$3" cand m
  if [[ -n "$want" ]]; then
    [[ -x "$want/bin/java" ]] || die "no $want/bin/java"
    echo "$want"; return
  fi
  local cands=()
  [[ -n "${JAVA_HOME:-}" ]] && cands+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    cands+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for cand in /usr/lib/jvm/* /opt/java/* /opt/jdk*; do [[ -d "$cand" ]] && cands+=("$cand"); done
  for cand in "${cands[@]}"; do
    [[ -x "$cand/bin/java" ]] || continue
    m="$(java_major "$cand")"
    [[ -n "$m" ]] || continue
    if (( m >= min && m <= max )); then echo "$cand"; return; fi
  done
  return 1
}

JAVA17_HOME=""
JAVA25_HOME=""
need_java17() {
  [[ -n "$JAVA17_HOME" ]] && return
  # Hadoop < 3.4.3 breaks on Java >= 23 (Subject.getSubject); Hive 4.1 supports 17
  JAVA17_HOME="$(find_jdk 17 21 "${CLICKSTREAM_JAVA17_HOME:-}")" ||
    die "no JDK 17 (or 21) found: set CLICKSTREAM_JAVA17_HOME"
}
need_java25() {
  [[ -n "$JAVA25_HOME" ]] && return
  # Trino 476 requires Java >= 24
  JAVA25_HOME="$(find_jdk 24 99 "${CLICKSTREAM_JAVA25_HOME:-}")" ||
    die "no JDK >= 24 found (Trino 476 needs it): set CLICKSTREAM_JAVA25_HOME"
}

# ---------------------------------------------------------------- fetching

# a marker holds the hash of what was fetched; a second run with the same inputs fetches nothing
marker_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
input_hash() { cat "$@" | sha256sum | cut -c1-16; }

mvn_copy_deps() { # pom outdir
  local pom="$1" out="$2" tmp="$2.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  "$MVN" -B -q "${MVN_OPTS[@]}" -f "$pom" "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
    -DoutputDirectory="$tmp" >"$LOGS/fetch-$(basename "$(dirname "$pom")").log" 2>&1 ||
    { tail -30 "$LOGS/fetch-$(basename "$(dirname "$pom")").log" >&2; die "mvn failed for $pom (log: $LOGS/fetch-$(basename "$(dirname "$pom")").log)"; }
  rm -rf "$out"; mv "$tmp" "$out"
}

fetch_jars() { # component: kafka | hdfs | hms | spark-hive
  local c="$1" pom="$HERE/poms/$1/pom.xml" dir="$INFRA/$1" h
  h="$(input_hash "$pom")"
  marker_ok "$dir/.fetched" "$h" && return
  log "fetching $c jars (mvn, $pom)"
  mkdir -p "$dir"
  mvn_copy_deps "$pom" "$dir/lib"
  echo "$h" >"$dir/.fetched"
  log "fetched $c: $(du -sh "$dir/lib" | cut -f1)"
}

fetch_trino() {
  local dir="$INFRA/trino" h="trino-server-$TRINO_VERSION-hive-only"
  marker_ok "$dir/.fetched" "$h" && return
  log "fetching trino-server $TRINO_VERSION (mvn dependency:copy; the tarball is ~820 MB)"
  mkdir -p "$dir" "$INFRA/dl"
  "$MVN" -B -q "${MVN_OPTS[@]}" "$DEP_PLUGIN:copy" -Dartifact="io.trino:trino-server:$TRINO_VERSION:tar.gz" \
    -DoutputDirectory="$INFRA/dl" >"$LOGS/fetch-trino.log" 2>&1 ||
    { tail -30 "$LOGS/fetch-trino.log" >&2; die "mvn failed for trino-server (log: $LOGS/fetch-trino.log)"; }
  # GNU tar: the tarball uses hard links between plugin dirs. Keep the launcher, lib and the hive
  # plugin (with its hdfs/ subdir) only: fewer plugins start faster and use less metaspace.
  rm -rf "$dir/staging" "$dir/server"; mkdir -p "$dir/staging"
  tar -xzf "$INFRA/dl/trino-server-$TRINO_VERSION.tar.gz" -C "$dir/staging"
  local src="$dir/staging/trino-server-$TRINO_VERSION"
  mkdir -p "$dir/server/plugin"
  mv "$src/bin" "$src/lib" "$dir/server/"
  mv "$src/plugin/hive" "$dir/server/plugin/"
  rm -rf "$dir/staging" "$INFRA/dl"
  echo "$h" >"$dir/.fetched"
  log "fetched trino: $(du -sh "$dir/server" | cut -f1)"
}

fetch_spark() {
  local dir="$INFRA/spark" h="pyspark==$PYSPARK_VERSION"
  fetch_jars spark-hive
  marker_ok "$dir/.fetched" "$h" && return
  log "creating the pyspark $PYSPARK_VERSION venv (pip; ~450 MB the first time)"
  mkdir -p "$dir"
  [[ -x "$dir/venv/bin/python" ]] || "$PYTHON" -m venv "$dir/venv"
  "$dir/venv/bin/python" -m pip install -q "pyspark==$PYSPARK_VERSION" >"$LOGS/fetch-spark.log" 2>&1 ||
    { tail -30 "$LOGS/fetch-spark.log" >&2; die "pip install pyspark failed (log: $LOGS/fetch-spark.log)"; }
  echo "$h" >"$dir/.fetched"
}

# The metastore's schema scripts ship in no jar; Hive's source release (on Maven Central) has them.
# They go where MetastoreSchemaTool looks: $METASTORE_HOME/scripts/metastore/upgrade/<db>/.
fetch_hms_scripts() {
  local dir="$INFRA/hms" h="hive-$HIVE_VERSION-source-release:derby"
  marker_ok "$dir/.scripts-fetched" "$h" && return
  log "fetching the metastore schema scripts (mvn: org.apache.hive:hive:$HIVE_VERSION:zip:source-release, ~110 MB)"
  mkdir -p "$INFRA/dl"
  "$MVN" -B -q "${MVN_OPTS[@]}" "$DEP_PLUGIN:copy" -Dartifact="org.apache.hive:hive:$HIVE_VERSION:zip:source-release" \
    -DoutputDirectory="$INFRA/dl" >"$LOGS/fetch-hms-scripts.log" 2>&1 ||
    { tail -30 "$LOGS/fetch-hms-scripts.log" >&2; die "mvn failed for the Hive source release (log: $LOGS/fetch-hms-scripts.log)"; }
  local out="$dir/scripts/metastore/upgrade/derby"
  rm -rf "$dir/scripts"; mkdir -p "$out"
  "$PYTHON" - "$INFRA/dl/hive-$HIVE_VERSION-source-release.zip" "$out" <<'PY'
import sys, zipfile, os
zf, out = zipfile.ZipFile(sys.argv[1]), sys.argv[2]
prefix = "/standalone-metastore/metastore-server/src/main/sql/derby/"
n = 0
for name in zf.namelist():
    i = name.find(prefix)
    if i >= 0 and not name.endswith("/"):
        with open(os.path.join(out, name[i + len(prefix):]), "wb") as f:
            f.write(zf.read(name))
        n += 1
if n == 0:
    sys.exit("no derby scripts in " + sys.argv[1])
PY
  [[ -f "$out/hive-schema-$HIVE_VERSION.derby.sql" ]] || die "no hive-schema-$HIVE_VERSION.derby.sql in the source release"
  rm -f "$INFRA/dl/hive-$HIVE_VERSION-source-release.zip"; rmdir "$INFRA/dl" 2>/dev/null || true
  echo "$h" >"$dir/.scripts-fetched"
}

fetch() { # components...
  local c
  for c in "$@"; do
    case "$c" in
      kafka|hdfs) fetch_jars "$c" ;;
      hms) fetch_jars hms; fetch_hms_scripts ;;
      trino) fetch_trino ;;
      spark) fetch_spark ;;
    esac
  done
}

# ---------------------------------------------------------------- configs

render() { # template output
  mkdir -p "$(dirname "$2")"
  sed -e "s#@INFRA@#$INFRA#g" -e "s#@REPO@#$REPO#g" -e "s#@USER@#$USER_NAME#g" \
      -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@KAFKA_CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@HDFS_PORT@#$HDFS_PORT#g" -e "s#@HDFS_HTTP_PORT@#$HDFS_HTTP_PORT#g" \
      -e "s#@DN_PORT@#$DN_PORT#g" -e "s#@DN_HTTP_PORT@#$DN_HTTP_PORT#g" -e "s#@DN_IPC_PORT@#$DN_IPC_PORT#g" \
      -e "s#@HMS_PORT@#$HMS_PORT#g" -e "s#@TRINO_PORT@#$TRINO_PORT#g" -e "s#@TRINO_HEAP@#$TRINO_HEAP#g" \
      -e "s#@WAREHOUSE@#$WAREHOUSE#g" -e "s#@MANAGED_WAREHOUSE@#$MANAGED_WAREHOUSE#g" "$1" >"$2"
}

render_all() {
  local t="$HERE/templates"
  render "$t/kafka/server.properties" "$CONF/kafka/server.properties"
  render "$t/kafka/log4j2.properties" "$CONF/kafka/log4j2.properties"
  render "$t/kafka/tools-log4j2.properties" "$CONF/kafka/tools-log4j2.properties"
  render "$t/hadoop/core-site.xml" "$CONF/hadoop/core-site.xml"
  render "$t/hadoop/hdfs-site.xml" "$CONF/hadoop/hdfs-site.xml"
  render "$t/hadoop/log4j.properties" "$CONF/hadoop/log4j.properties"
  render "$t/hms/metastore-site.xml" "$CONF/hms/metastore-site.xml"
  render "$t/hms/metastore-log4j2.properties" "$CONF/hms/metastore-log4j2.properties"
  rm -rf "$CONF/hadoop/webapps"; cp -R "$t/hadoop/webapps" "$CONF/hadoop/"
  cp "$CONF/hadoop/core-site.xml" "$CONF/hadoop/hdfs-site.xml" "$CONF/hms/"
  local f
  for f in node.properties config.properties log.properties jvm.config catalog/hive.properties; do
    render "$t/trino/$f" "$CONF/trino/$f"
  done
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$RUN/$1.pid"; }

# running NAME: the saved pid is alive and is the process stack.sh started (not a reused pid)
running() {
  local pf pid
  pf="$(pidfile "$1")"
  [[ -f "$pf" ]] || return 1
  pid="$(cat "$pf")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # spawn() puts the marker in the environment, which survives the exec of launchers (Trino's)
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "CLICKSTREAM_COMPONENT=$1"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port_busy_check() { # name port...
  local n="$1" p; shift
  for p in "$@"; do
    port_open "$p" && die "$n: port 127.0.0.1:$p is already in use by another process (set CLICKSTREAM_*_PORT)"
  done
  return 0
}

spawn() { # name logfile java_home args... ; starts detached, saves the pid
  local name="$1" logf="$2" jh="$3"; shift 3
  mkdir -p "$RUN" "$LOGS"
  : >"$logf"
  # setsid: the daemon outlives the shell (and the test process group) that started it. The inner
  # shell writes its own pid and then execs the JVM, so the saved pid is the JVM's whether or not
  # setsid had to fork.
  # shellcheck disable=SC2016 # $$, $1 and $@ are the inner shell's
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' spawn "$(pidfile "$name")" \
    env CLICKSTREAM_COMPONENT="$name" JAVA_HOME="$jh" PATH="$jh/bin:$PATH" "$@" >>"$logf" 2>&1 </dev/null 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do [[ -s "$(pidfile "$name")" ]] && break; sleep 0.1; done
}

fail_with_log() { # name logfile message
  log "ERROR: $1: $3"
  log "log file: $2 (last 30 lines):"
  tail -n 30 "$2" >&2 || true
  exit 1
}

wait_for() { # name logfile description check-command...
  local name="$1" logf="$2" what="$3"; shift 3
  local start=$SECONDS
  while ! "$@" >/dev/null 2>&1; do
    running "$name" || fail_with_log "$name" "$logf" "the process exited while waiting for $what"
    (( SECONDS - start < WAIT_SECONDS )) || fail_with_log "$name" "$logf" "timed out after ${WAIT_SECONDS}s waiting for $what"
    sleep 1
  done
  log "$name: $what after $((SECONDS - start))s"
}

stop_one() { # name
  local name="$1" pf pid i
  pf="$(pidfile "$name")"
  [[ -f "$pf" ]] || return 0
  pid="$(cat "$pf")"
  if running "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) still running after 30s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$pf"
}

# ---------------------------------------------------------------- components

kafka_cp() { echo "$CONF/kafka:$INFRA/kafka/lib/*"; }
kafka_java_opts() { # component-name
  echo "-Dclickstream.component=$1 -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true -Dkafka.logs.dir=$LOGS"
}

start_kafka() {
  running kafka && { log "kafka: already running (pid $(cat "$(pidfile kafka)"))"; return; }
  port_busy_check kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  need_java17
  local logf="$LOGS/kafka.log"
  mkdir -p "$INFRA/kafka/data"
  if [[ ! -f "$INFRA/kafka/data/meta.properties" ]]; then
    log "kafka: formatting the KRaft log dir"
    # shellcheck disable=SC2046
    "$JAVA17_HOME/bin/java" -Xmx256m -XX:TieredStopAtLevel=1 $(kafka_java_opts kafka-format) \
      -Dlog4j2.configurationFile="$CONF/kafka/tools-log4j2.properties" -cp "$(kafka_cp)" \
      kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$CONF/kafka/server.properties" \
      --ignore-formatted >"$LOGS/kafka-format.log" 2>&1 ||
      fail_with_log kafka "$LOGS/kafka-format.log" "storage format failed"
  fi
  log "kafka: starting on 127.0.0.1:$KAFKA_PORT"
  # shellcheck disable=SC2046
  spawn kafka "$logf" "$JAVA17_HOME" java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    $(kafka_java_opts kafka) -Dlog4j2.configurationFile="$CONF/kafka/log4j2.properties" \
    -cp "$(kafka_cp)" kafka.Kafka "$CONF/kafka/server.properties"
  wait_for kafka "$LOGS/kafka.log" "port $KAFKA_PORT" port_open "$KAFKA_PORT"
  wait_for kafka "$LOGS/kafka.log" "'Kafka Server started'" grep -q "Kafka Server started" "$LOGS/kafka.log"
}

hdfs_cp() { echo "$CONF/hadoop:$INFRA/hdfs/lib/*"; }

nn_jmx() { curl -sf --max-time 5 "http://127.0.0.1:$HDFS_HTTP_PORT/jmx?qry=$1"; }
hdfs_live_datanode() {
  nn_jmx 'Hadoop:service=NameNode,name=FSNamesystemState' | grep -Eq '"NumLiveDataNodes" *: *[1-9]'
}
hdfs_safemode_off() {
  # NameNodeInfo.Safemode is "" when safe mode is off
  nn_jmx 'Hadoop:service=NameNode,name=NameNodeInfo' | grep -Eq '"Safemode" *: *""'
}
webhdfs() { # method path op [query]
  curl -sf --max-time 10 -X "$1" "http://127.0.0.1:$HDFS_HTTP_PORT/webhdfs/v1$2?op=$3&user.name=$USER_NAME${4:+&$4}"
}
hdfs_dir_777() { # path: create (or keep) an HDFS directory with mode 777
  webhdfs PUT "$1" MKDIRS "permission=777" | grep -q '"boolean" *: *true' &&
    webhdfs PUT "$1" SETPERMISSION "permission=777" >/dev/null &&
    webhdfs GET "$1" GETFILESTATUS | grep -q '"permission" *: *"777"'
}
hdfs_warehouse_ok() { hdfs_dir_777 "$WAREHOUSE" && hdfs_dir_777 "$MANAGED_WAREHOUSE"; }

start_hdfs() {
  need_java17
  local cp; cp="$(hdfs_cp)"
  if running namenode; then
    log "namenode: already running (pid $(cat "$(pidfile namenode)"))"
  else
    port_busy_check namenode "$HDFS_PORT" "$HDFS_HTTP_PORT"
    if [[ ! -f "$INFRA/hdfs/name/current/VERSION" ]]; then
      log "namenode: formatting"
      mkdir -p "$INFRA/hdfs"
      "$JAVA17_HOME/bin/java" "${JDK17_OPENS[@]}" -Xmx256m -XX:TieredStopAtLevel=1 -cp "$cp" \
        org.apache.hadoop.hdfs.server.namenode.NameNode -format -nonInteractive -clusterId clickstream \
        >"$LOGS/namenode-format.log" 2>&1 || fail_with_log namenode "$LOGS/namenode-format.log" "format failed"
    fi
    log "namenode: starting on 127.0.0.1:$HDFS_PORT (http $HDFS_HTTP_PORT)"
    spawn namenode "$LOGS/namenode.log" "$JAVA17_HOME" java "${JDK17_OPENS[@]}" -Dclickstream.component=namenode \
      "-Xmx$NN_HEAP" -XX:+UseG1GC -Dhadoop.log.dir="$LOGS" -Dhadoop.home.dir="$INFRA/hdfs" \
      -cp "$cp" org.apache.hadoop.hdfs.server.namenode.NameNode
    wait_for namenode "$LOGS/namenode.log" "NameNode RPC port $HDFS_PORT" port_open "$HDFS_PORT"
  fi
  if running datanode; then
    log "datanode: already running (pid $(cat "$(pidfile datanode)"))"
  else
    port_busy_check datanode "$DN_PORT" "$DN_HTTP_PORT" "$DN_IPC_PORT"
    log "datanode: starting on 127.0.0.1:$DN_PORT"
    spawn datanode "$LOGS/datanode.log" "$JAVA17_HOME" java "${JDK17_OPENS[@]}" -Dclickstream.component=datanode \
      "-Xmx$DN_HEAP" -XX:+UseG1GC -Dhadoop.log.dir="$LOGS" -Dhadoop.home.dir="$INFRA/hdfs" \
      -cp "$cp" org.apache.hadoop.hdfs.server.datanode.DataNode
  fi
  wait_for datanode "$LOGS/datanode.log" "a live DataNode" hdfs_live_datanode
  wait_for namenode "$LOGS/namenode.log" "safe mode off" hdfs_safemode_off
  wait_for namenode "$LOGS/namenode.log" "warehouse dirs $WAREHOUSE, $MANAGED_WAREHOUSE (mode 777)" hdfs_warehouse_ok
}

hms_ready() { "$PYTHON" "$HERE/tools/hms_ping.py" --port "$HMS_PORT" --timeout 10 | grep -qx default; }

start_hms() {
  running hms && { log "hms: already running (pid $(cat "$(pidfile hms)"))"; return; }
  port_busy_check hms "$HMS_PORT"
  need_java17
  mkdir -p "$INFRA/hms"
  local cp="$CONF/hms:$INFRA/hms/lib/*"
  if [[ ! -f "$INFRA/hms/metastore_db/.schema-ok" ]]; then
    log "hms: creating the Derby schema (MetastoreSchemaTool -initSchema, Hive $HIVE_VERSION scripts)"
    rm -rf "$INFRA/hms/metastore_db"
    METASTORE_HOME="$INFRA/hms" "$JAVA17_HOME/bin/java" "${JDK17_OPENS[@]}" -Xmx512m -XX:TieredStopAtLevel=1 \
      -Dderby.system.home="$INFRA/hms" -Dlog4j2.configurationFile="$CONF/hms/metastore-log4j2.properties" \
      -cp "$cp" org.apache.hadoop.hive.metastore.tools.schematool.MetastoreSchemaTool \
      -initSchema -dbType derby >"$LOGS/hms-schema.log" 2>&1 ||
      fail_with_log hms "$LOGS/hms-schema.log" "schema creation failed"
    touch "$INFRA/hms/metastore_db/.schema-ok"
  fi
  log "hms: starting on 127.0.0.1:$HMS_PORT"
  # derby.system.home keeps derby.log out of the working directory
  spawn hms "$LOGS/hms.log" "$JAVA17_HOME" java "${JDK17_OPENS[@]}" -Dclickstream.component=hms \
    "-Xmx$HMS_HEAP" -XX:+UseG1GC -Dderby.system.home="$INFRA/hms" \
    -Dlog4j2.configurationFile="$CONF/hms/metastore-log4j2.properties" \
    -Dlog4j.configurationFile="$CONF/hms/metastore-log4j2.properties" \
    -Dhadoop.home.dir="$INFRA/hms" -Dhive.log.dir="$LOGS" \
    -cp "$cp" org.apache.hadoop.hive.metastore.HiveMetaStore
  wait_for hms "$LOGS/hms.log" "thrift port $HMS_PORT" port_open "$HMS_PORT"
  wait_for hms "$LOGS/hms.log" "get_all_databases answering 'default'" hms_ready
}

trino_ready() {
  curl -sf --max-time 5 "http://127.0.0.1:$TRINO_PORT/v1/info" | grep -Eq '"starting" *: *false' &&
    "$PYTHON" "$HERE/tools/trino_sql.py" --server "http://127.0.0.1:$TRINO_PORT" --timeout 30 "SELECT 1" | grep -q '1'
}

start_trino() {
  running trino && { log "trino: already running (pid $(cat "$(pidfile trino)"))"; return; }
  port_busy_check trino "$TRINO_PORT"
  need_java25
  mkdir -p "$INFRA/trino/data"
  log "trino: starting on 127.0.0.1:$TRINO_PORT"
  # `launcher run` execs the JVM in the foreground, so the saved pid is the JVM's
  spawn trino "$LOGS/trino.log" "$JAVA25_HOME" "$INFRA/trino/server/bin/launcher" run \
    --etc-dir="$CONF/trino" --data-dir="$INFRA/trino/data"
  wait_for trino "$LOGS/trino.log" "HTTP port $TRINO_PORT" port_open "$TRINO_PORT"
  wait_for trino "$LOGS/trino.log" "'SELECT 1' answering (/v1/info starting=false)" trino_ready
}

# ---------------------------------------------------------------- commands

ALL=(kafka hdfs hms trino spark)

with_deps() { # components... -> ordered list with dependencies
  local want=" $* " out=() c
  [[ "$want" == *" trino "* ]] && want+=" hms "
  [[ "$want" == *" hms "* ]] && want+=" hdfs "
  [[ "$want" == *" spark "* ]] && want+=" hms hdfs "
  for c in hdfs kafka hms trino spark; do [[ "$want" == *" $c "* ]] && out+=("$c"); done
  echo "${out[@]}"
}

check_components() {
  local c
  for c in "$@"; do
    case "$c" in kafka|hdfs|hms|trino|spark) ;; *) die "unknown component '$c' (kafka, hdfs, hms, trino, spark)" ;; esac
  done
}

cmd_up() {
  (( $# )) || set -- "${ALL[@]}"
  check_components "$@"
  local comps t0=$SECONDS c
  read -r -a comps <<<"$(with_deps "$@")"
  mkdir -p "$LOGS" "$RUN"
  fetch "${comps[@]}"
  render_all
  for c in "${comps[@]}"; do
    case "$c" in
      kafka) start_kafka ;;
      hdfs) start_hdfs ;;
      hms) start_hms ;;
      trino) start_trino ;;
      spark) ;; # on demand: stack.sh spark-sql / spark/query.py
    esac
  done
  log "up: ${comps[*]} in $((SECONDS - t0))s"
  cmd_status
}

cmd_down() {
  local names=() c
  (( $# )) || set -- "${ALL[@]}"
  check_components "$@"
  # reverse dependency order
  for c in trino hms hdfs kafka; do
    [[ " $* " == *" $c "* ]] || continue
    if [[ "$c" == hdfs ]]; then names+=(datanode namenode); else names+=("$c"); fi
  done
  for c in "${names[@]}"; do stop_one "$c"; done
}

status_line() { # name port
  local pid="-" state=down
  if running "$1"; then state=up; pid="$(cat "$(pidfile "$1")")"; fi
  printf '%-9s %-4s pid=%-8s 127.0.0.1:%s\n' "$1" "$state" "$pid" "$2"
}

cmd_status() {
  status_line kafka "$KAFKA_PORT"
  status_line namenode "$HDFS_PORT"
  status_line datanode "$DN_PORT"
  status_line hms "$HMS_PORT"
  status_line trino "$TRINO_PORT"
  local s=absent
  [[ -x "$INFRA/spark/venv/bin/python" && -f "$INFRA/spark/.fetched" ]] && s="ready (on demand)"
  printf '%-9s %s\n' spark "$s"
}

cmd_reset() {
  cmd_down
  log "reset: deleting data, logs and pids under $INFRA (downloads kept)"
  rm -rf "$INFRA/kafka/data" "$INFRA/hdfs/name" "$INFRA/hdfs/data" "$INFRA/hdfs/tmp" \
    "$INFRA/hms/metastore_db" "$INFRA/hms/derby.log" "$INFRA/trino/data" "$INFRA/spark/work" \
    "$LOGS" "$CONF"
  find "$RUN" -name '*.pid' -delete 2>/dev/null || true
}

cmd_env() {
  cat <<EOF
CLICKSTREAM_INFRA_DIR=$INFRA
CLICKSTREAM_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
CLICKSTREAM_HDFS_NAMENODE=127.0.0.1:$HDFS_PORT
CLICKSTREAM_HDFS_URI=hdfs://127.0.0.1:$HDFS_PORT
CLICKSTREAM_HDFS_USER=$USER_NAME
CLICKSTREAM_WAREHOUSE_URI=hdfs://127.0.0.1:$HDFS_PORT$WAREHOUSE
CLICKSTREAM_MANAGED_WAREHOUSE_URI=hdfs://127.0.0.1:$HDFS_PORT$MANAGED_WAREHOUSE
CLICKSTREAM_HMS_ADDR=127.0.0.1:$HMS_PORT
CLICKSTREAM_HMS_URI=thrift://127.0.0.1:$HMS_PORT
CLICKSTREAM_TRINO_URL=http://127.0.0.1:$TRINO_PORT
EOF
}

# spark-sql [query.py options] "SQL": a local SparkSession (JDK 17, the venv's pyspark) whose
# catalog is the metastore (Hive 4.1 client jars from .infra/spark-hive/lib) and whose files are on
# HDFS. Rows go to stdout as JSON lines; Spark's own logging goes to stderr.
cmd_spark_sql() {
  (( $# )) || die "usage: stack.sh spark-sql \"SQL\""
  [[ -x "$INFRA/spark/venv/bin/python" && -f "$INFRA/spark/.fetched" ]] ||
    die "no pyspark venv under $INFRA/spark: run stack.sh up (or stack.sh fetch spark)"
  need_java17
  export JAVA_HOME="$JAVA17_HOME" PATH="$JAVA17_HOME/bin:$PATH" SPARK_LOCAL_IP=127.0.0.1
  export CLICKSTREAM_INFRA_DIR="$INFRA" CLICKSTREAM_HDFS_PORT="$HDFS_PORT" CLICKSTREAM_HMS_PORT="$HMS_PORT"
  export CLICKSTREAM_MANAGED_WAREHOUSE="$MANAGED_WAREHOUSE" CLICKSTREAM_SPARK_DRIVER_MEMORY="${CLICKSTREAM_SPARK_DRIVER_MEMORY:-1g}"
  export HADOOP_USER_NAME="${HADOOP_USER_NAME:-$USER_NAME}" SPARK_LOCAL_DIRS="$INFRA/spark/work"
  # pyspark turns timestamps into naive datetimes in the process's time zone: make that UTC
  export TZ="${CLICKSTREAM_SPARK_TZ:-UTC}"
  exec "$INFRA/spark/venv/bin/python" "$HERE/spark/query.py" "$@"
}

# up, down, reset and fetch run one at a time (e.g. two test packages calling up at once): the
# second waits for the first, then finds the components running. Daemons do not inherit the lock.
take_lock() {
  mkdir -p "$RUN"
  exec 9>"$RUN/stack.lock"
  flock -w 900 9 || die "another stack.sh holds $RUN/stack.lock for more than 900s"
}

main() {
  local cmd="${1:-}"
  (( $# )) && shift
  case "$cmd" in up|down|reset|fetch) take_lock ;; esac
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    fetch) (( $# )) || set -- "${ALL[@]}"; check_components "$@"; mkdir -p "$LOGS"; fetch "$@" ;;
    spark-sql) cmd_spark_sql "$@" ;;
    env) cmd_env ;;
    logs) ls -1 "$LOGS"/* 2>/dev/null || true ;;
    ""|-h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (up, down, status, reset, fetch, spark-sql, env, logs)" ;;
  esac
}

main "$@"
