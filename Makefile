# apiwarden - build, generate, test, run, bench.
# Generated code (bpf2go objects and bindings, protobuf stubs) is committed, so
# `make build` needs only Go; `make generate` needs clang-19 and rebuilds them.

# sudo's PATH usually lacks Go's default install location.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests and generators run go themselves: give them the same one.
export PATH := $(dir $(GO)):$(PATH)
BIN       ?= bin
DATA_DIR  ?= /var/lib/apiwarden
API_ADDR  ?= 127.0.0.1:9464
GOFLAGS_BUILD ?= -trimpath

.PHONY: all build generate generate-bpf generate-proto check-generated test test-unit test-e2e deps run bench bench-go clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/apiwarden ./cmd/apiwarden
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/apiwardenctl ./cmd/apiwardenctl

# generate rebuilds every generated file: eBPF objects + Go bindings (bpf2go,
# clang-19) and the gRPC/REST stubs (buf and protoc plugins from tools/go.mod).
generate: generate-bpf generate-proto

generate-bpf:
	$(GO) generate ./datapath/...

generate-proto:
	./scripts/gen-proto.sh

# check-generated fails when the committed generated code is stale.
check-generated:
	./scripts/check-generated.sh

# deps installs what the tests drive (real servers and clients) on Debian/Ubuntu.
deps:
	./scripts/install-deps.sh

# test runs the whole suite: unit tests, BPF_PROG_TEST_RUN kernel tests and the
# network-namespace end-to-end tests. Kernel and e2e tests need root; as
# non-root they skip. Packages run one at a time (-p 1): an agent under test
# probes the host's TLS libraries and would see (and in protect mode, cut)
# the traffic of another package's tests running beside it.
test: deps
	$(GO) vet ./...
	$(GO) test -p 1 -count=1 -timeout 25m ./...

test-unit:
	$(GO) test -count=1 -short ./...

test-e2e: build
	$(GO) test -count=1 -v -timeout 15m ./e2e/...

# run builds the agent and runs it on the embedded default configuration:
# every up interface, monitor mode, API on $(API_ADDR), store in $(DATA_DIR).
run: build
	$(BIN)/apiwarden agent --data-dir $(DATA_DIR) --api-addr $(API_ADDR)

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./apimodel/... 
	$(GO) run ./bench/http

clean:
	rm -rf $(BIN)
