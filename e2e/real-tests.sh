#!/usr/bin/env bash
# Runs every test that needs the real stack (make e2e starts it and exports its addresses with
# deploy/local/stack.sh env), and fails unless each named test ran and passed: a gated test that
# skips, a test renamed away from its -run pattern or a run that matched nothing is a failure,
# not a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CLICKSTREAM_HDFS_URI:?run through make e2e (deploy/local/stack.sh env)}"
stamp=$(date +%s)

# The gated tests of the lake's file systems and metastore client and of the lakewriter.
export LAKE_TEST_HDFS="$CLICKSTREAM_HDFS_URI/tmp/laketest-$stamp" LAKE_TEST_HDFS_USER="$CLICKSTREAM_HDFS_USER"
export LAKE_TEST_METASTORE="$CLICKSTREAM_HMS_URI"
export LAKEWRITER_TEST_HDFS="$CLICKSTREAM_HDFS_URI/tmp/lakewriter-$stamp" LAKEWRITER_TEST_HDFS_USER="$CLICKSTREAM_HDFS_USER"
export LAKEWRITER_TEST_METASTORE="$CLICKSTREAM_HMS_URI"
export CLICKSTREAM_E2E=1

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# run MODULE PATTERN PACKAGE TEST... : go test -v, then every TEST must have passed.
run() {
  local module=$1 pattern=$2 pkg=$3
  shift 3
  echo "== $module: go test -run '$pattern' $pkg (real stack)"
  (cd "$module" && go test -count=1 -timeout 30m -v -run "$pattern" "$pkg") 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  if grep -E -- '^\s*--- SKIP' "$out"; then
    echo "real-stack tests skipped (listed above): they must run in make e2e" >&2
    exit 1
  fi
  if grep -q 'no tests to run' "$out"; then
    echo "$module: -run '$pattern' matched no test" >&2
    exit 1
  fi
  (( rc == 0 )) || exit "$rc"
  for name in "$@"; do
    grep -q -- "^--- PASS: $name " "$out" || { echo "$module: $name did not run and pass" >&2; exit 1; }
  done
}

run services '^TestReal(HDFS|Metastore)$' ./lake/ TestRealHDFS TestRealMetastore
run lakewriter '^(TestRealLake|TestRealFreshness|TestCrashAndReplay)$' . TestRealLake TestRealFreshness TestCrashAndReplay
run e2e '^TestRealStack' ./ TestRealStack TestRealStackSchemas
