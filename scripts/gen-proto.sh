#!/bin/sh
# Regenerates the Go stubs of api/ and the REST API's OpenAPI document
# (apiwarden.swagger.json, embedded and served at /v1/openapi.json) from the protos with buf and the protoc
# plugins pinned in tools/go.mod. Everything is built from the module cache,
# so it runs offline once the tools module has been downloaded, and the
# output depends only on the pinned versions (byte-identical on rerun).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/tools/.bin"
mkdir -p "$bin"

# Build once into tools/.bin (git-ignored); go build is a no-op when cached.
(cd "$root/tools" && go build -o "$bin/" \
	github.com/bufbuild/buf/cmd/buf \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2)

cd "$root/api"
rm -f apiwarden/v1/*.pb.go apiwarden/v1/*.pb.gw.go apiwarden/v1/*.swagger.json
export BUF_CACHE_DIR="$root/tools/.bin/buf-cache"
"$bin/buf" lint
PATH="$bin:$PATH" "$bin/buf" generate
