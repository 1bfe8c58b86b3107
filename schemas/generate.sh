#!/usr/bin/env bash
# Regenerates schemas/gen from schemas/proto with buf, using the pinned tools module (../tools),
# and copies buf.validate's validate.proto from the Go module github.com/bufbuild/protovalidate
# into the git-ignored .deps folder (the Buf Schema Registry is not used).
set -euo pipefail
cd "$(dirname "$0")"
source ./buf-env.sh

rm -rf gen
mkdir -p gen
"$BUF" generate
