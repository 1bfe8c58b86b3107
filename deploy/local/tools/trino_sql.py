#!/usr/bin/env python3
"""Run one SQL statement on Trino through its HTTP protocol (/v1/statement), standard library only.

Prints the result rows as JSON lines ({"column": value, ...}) on stdout; exits 1 with Trino's error
message on stderr if the query fails. Used by stack.sh (health check: SELECT 1) and smoke.sh.

usage: trino_sql.py [--server http://127.0.0.1:8088] [--user U] [--catalog C] [--schema S]
                    [--timeout SECONDS] "SQL"
"""
import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def request(method, url, headers, body=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    for attempt in range(20):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            # 502/503/504 are retryable in Trino's protocol; anything else is final
            if e.code in (502, 503, 504) and attempt < 19:
                time.sleep(0.1 * (attempt + 1))
                continue
            raise RuntimeError("HTTP %d from %s: %s" % (e.code, url, e.read().decode("utf-8", "replace")))
    raise RuntimeError("no answer from %s" % url)


def run(server, sql, user, catalog=None, schema=None, timeout=300):
    headers = {"X-Trino-User": user, "X-Trino-Source": "clickstream-local-stack",
               "Content-Type": "text/plain; charset=utf-8"}
    if catalog:
        headers["X-Trino-Catalog"] = catalog
    if schema:
        headers["X-Trino-Schema"] = schema
    deadline = time.monotonic() + timeout
    page = request("POST", server.rstrip("/") + "/v1/statement", headers, sql.encode("utf-8"))
    columns, rows = None, []
    while True:
        if page.get("columns") and columns is None:
            columns = [c["name"] for c in page["columns"]]
        for row in page.get("data") or []:
            rows.append(row)
        err = page.get("error")
        if err:
            raise RuntimeError("%s: %s" % (err.get("errorName", "ERROR"), err.get("message", "")))
        nxt = page.get("nextUri")
        if not nxt:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("query still running after %ss" % timeout)
        page = request("GET", nxt, {"X-Trino-User": user})
    return columns or [], rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="http://127.0.0.1:8088")
    ap.add_argument("--user", default="clickstream")
    ap.add_argument("--catalog")
    ap.add_argument("--schema")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("sql")
    a = ap.parse_args()
    try:
        columns, rows = run(a.server, a.sql, a.user, a.catalog, a.schema, a.timeout)
    except Exception as e:  # noqa: BLE001
        print("trino_sql: %s" % e, file=sys.stderr)
        sys.exit(1)
    for row in rows:
        print(json.dumps(dict(zip(columns, row)), default=str))


if __name__ == "__main__":
    main()
