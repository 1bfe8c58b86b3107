#!/usr/bin/env bash
# buf lint (STANDARD rules) and buf format check of schemas/proto.
set -euo pipefail
cd "$(dirname "$0")"
source ./buf-env.sh

"$BUF" lint
"$BUF" format --diff --exit-code proto
