#!/usr/bin/env python3
"""Run SQL on a local SparkSession that reads tables through the local Hive Metastore and HDFS.

Called by the e2e tests as a subprocess, through `deploy/local/stack.sh spark-sql "SQL"` (which
sets JAVA_HOME to a JDK 17 and uses the pyspark venv under .infra/spark):

    deploy/local/stack.sh spark-sql "select count(*) as n from clickstream.page_view"

stdout: one JSON object per result row, keys = the result's column names in order, e.g.
    {"n": 42}
Timestamps and dates are ISO-8601 strings, decimals are strings, binary is base64, nested rows
are objects, arrays are lists, maps are objects. Statements without a result (CREATE, INSERT ...)
print nothing. Several statements can be given as several arguments (one Spark start-up for all,
which saves ~20-30 s per query); only the last one's rows are printed, unless --per-statement is
given: then each statement prints exactly one line, {"statement": i, "rows": [row, ...]} with i
counting from 0. stderr: Spark's log (warnings and errors only). Exit status 0 on success, 1 on any
error (the error is on stderr).

Catalog access goes through the metastore (spark.table / SQL on table names), never by path.
Spark's builtin Hive 2.3.10 client cannot talk to a Hive 4 metastore (it calls get_table, which
Hive 4 removed), so the session uses Spark's isolated Hive client at metastore version 4.1.0 with
the jars stack.sh fetched with mvn into .infra/spark-hive/lib (spark.sql.hive.metastore.jars=path).
Parquet tables are read by Spark's own Parquet reader (spark.sql.hive.convertMetastoreParquet).

Environment (stack.sh sets these from its own settings):
  CLICKSTREAM_INFRA_DIR, CLICKSTREAM_HDFS_PORT [8020], CLICKSTREAM_HMS_PORT [9083],
  CLICKSTREAM_MANAGED_WAREHOUSE [/user/hive/warehouse], CLICKSTREAM_SPARK_DRIVER_MEMORY [1g],
  CLICKSTREAM_SPARK_CONF: extra "key=value" settings separated by ';'.
"""
import argparse
import base64
import datetime
import decimal
import glob
import json
import os
import sys


def json_default(v):
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


def to_plain(v):
    from pyspark.sql import Row

    if isinstance(v, Row):
        return {k: to_plain(x) for k, x in v.asDict(recursive=False).items()}
    if isinstance(v, dict):
        return {str(k): to_plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_plain(x) for x in v]
    return v


def build_session(args):
    from pyspark.sql import SparkSession

    here = os.path.dirname(os.path.abspath(__file__))
    infra = os.environ.get("CLICKSTREAM_INFRA_DIR") or os.path.join(here, "..", "..", "..", ".infra")
    infra = os.path.abspath(infra)
    hdfs = "hdfs://127.0.0.1:%s" % os.environ.get("CLICKSTREAM_HDFS_PORT", "8020")
    hms = "thrift://127.0.0.1:%s" % os.environ.get("CLICKSTREAM_HMS_PORT", "9083")
    # Spark's own (managed) tables go to the metastore's managed warehouse, not into the lake
    warehouse = hdfs + os.environ.get("CLICKSTREAM_MANAGED_WAREHOUSE", "/user/hive/warehouse")
    jars_dir = os.path.join(infra, "spark-hive", "lib")
    if not glob.glob(os.path.join(jars_dir, "hive-metastore-*.jar")):
        raise SystemExit("query.py: no Hive 4.1 client jars in %s: run deploy/local/stack.sh up" % jars_dir)
    work = os.path.join(infra, "spark", "work")
    os.makedirs(work, exist_ok=True)
    log4j = os.path.join(here, "log4j2.properties")
    java_opts = "-Dlog4j2.configurationFile=file:%s -Djava.net.preferIPv4Stack=true -Dderby.system.home=%s" % (
        log4j, work)

    b = (SparkSession.builder.appName("clickstream-e2e-query")
         .master(args.master)
         .config("spark.driver.memory", os.environ.get("CLICKSTREAM_SPARK_DRIVER_MEMORY", "1g"))
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.driver.extraJavaOptions", java_opts)
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.hadoop.fs.defaultFS", hdfs)
         .config("spark.hadoop.hive.metastore.uris", hms)
         .config("spark.sql.warehouse.dir", warehouse)
         .config("spark.sql.catalogImplementation", "hive")
         .config("spark.sql.hive.metastore.version", "4.1.0")
         .config("spark.sql.hive.metastore.jars", "path")
         .config("spark.sql.hive.metastore.jars.path", "file://%s/*.jar" % jars_dir)
         # Hive 4 clients ask the metastore to validate their version: not with our Derby schema
         .config("spark.hadoop.hive.metastore.schema.verification", "false")
         .config("spark.hadoop.metastore.client.capability.check", "false"))
    for kv in filter(None, (os.environ.get("CLICKSTREAM_SPARK_CONF") or "").split(";")):
        k, _, v = kv.partition("=")
        b = b.config(k.strip(), v.strip())
    for kv in args.conf or []:
        k, _, v = kv.partition("=")
        b = b.config(k.strip(), v.strip())
    return b.enableHiveSupport().getOrCreate()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--conf", action="append", help="extra Spark setting key=value (repeatable)")
    ap.add_argument("--per-statement", action="store_true",
                    help='print one line per statement: {"statement": i, "rows": [...]}')
    ap.add_argument("sql", nargs="+", help="SQL statement(s); the last one's rows are printed")
    args = ap.parse_args()

    spark = build_session(args)
    spark.sparkContext.setLogLevel("WARN")
    out = sys.stdout
    try:
        for i, stmt in enumerate(args.sql):
            df = spark.sql(stmt)
            if args.per_statement:
                rows = [row_object(df.columns, r) for r in df.collect()]
                out.write(dumps({"statement": i, "rows": rows}) + "\n")
                out.flush()
            elif i == len(args.sql) - 1:
                for r in df.toLocalIterator():
                    out.write(dumps(row_object(df.columns, r)) + "\n")
                out.flush()
    finally:
        spark.stop()


def row_object(columns, row):
    plain = to_plain(row)
    return {c: plain[c] for c in columns}


def dumps(v):
    return json.dumps(v, default=json_default, ensure_ascii=False)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - report any failure on stderr, exit 1
        print("query.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
