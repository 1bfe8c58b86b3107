# Sourced by generate.sh and lint.sh: builds buf and the protoc plugins from ../tools (pinned by its
# go.mod) into .deps/bin, and puts validate.proto into .deps/protovalidate. Both are cached.
PROTOVALIDATE_VERSION=v1.2.2 # github.com/bufbuild/protovalidate: the proto sources of buf.validate

export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOWORK=off
deps=$PWD/.deps
mkdir -p "$deps/bin"
export PATH="$deps/bin:$PATH"

stamp="$deps/bin/.tools-$(sha256sum ../tools/go.sum | cut -c1-16)"
if [[ ! -e $stamp ]]; then
  echo "building buf and protoc plugins from tools/go.mod (first run only)" >&2
  (cd ../tools && go build -o "$deps/bin/" \
    github.com/bufbuild/buf/cmd/buf \
    google.golang.org/protobuf/cmd/protoc-gen-go \
    google.golang.org/grpc/cmd/protoc-gen-go-grpc)
  touch "$stamp"
fi
BUF="$deps/bin/buf"

validate_proto="$deps/protovalidate/buf/validate/validate.proto"
if [[ ! -e "$deps/protovalidate/.version-$PROTOVALIDATE_VERSION" ]]; then
  dir=$(cd "$deps" && GOFLAGS=-mod=mod go mod download -json "github.com/bufbuild/protovalidate@$PROTOVALIDATE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$deps/protovalidate"
  mkdir -p "$(dirname "$validate_proto")"
  cp "$dir/proto/protovalidate/buf/validate/validate.proto" "$validate_proto"
  chmod 0644 "$validate_proto"
  touch "$deps/protovalidate/.version-$PROTOVALIDATE_VERSION"
fi
