#!/usr/bin/env bash
# Builds the Go client and its example offline, in GOPATH mode against the
# Debian-packaged sources in /usr/share/gocode (golang-google-grpc-dev,
# golang-google-protobuf-dev); nothing is fetched from the network.
#
#   client/go/build.sh OUT_DIR         -> OUT_DIR/go-example (and OUT_DIR/gopath, gocache)
#   client/go/build.sh OUT_DIR --test  also runs the package's tests (go test)
#
# Stubs are generated with protoc-gen-go / protoc-gen-go-grpc into
# OUT_DIR/gopath under the proto's go_package import path.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
MOD=github.com/dynamo-batcher/dynamo-batcher
GP="$OUT/gopath"
GEN="$GP/src/$MOD/gen/go"
mkdir -p "$GEN" "$GP/src/$MOD/client"
protoc -I"$REPO/proto" --go_out="$GEN" --go_opt=paths=source_relative \
  --go-grpc_out="$GEN" --go-grpc_opt=paths=source_relative \
  "$REPO/proto/dynamobatcher/v1/batcher.proto"
ln -sfn "$HERE" "$GP/src/$MOD/client/go"
export GO111MODULE=off GOPATH="$GP:/usr/share/gocode" GOCACHE="$OUT/gocache" GOFLAGS=
cd "$GP/src/$MOD/client/go"
go vet ./batcher ./example
go build -o "$OUT/go-example" ./example
if [ "${2:-}" = "--test" ]; then
  go test -count=1 ./batcher
fi
