# Hyperpath: `make run` starts the daemon on its embedded default config;
# `make test` installs what the tests need and runs all of them.

GO        ?= go
SOCK      ?= /var/tmp/spdk.sock
ARGS      ?=
# SPDK's scripts (rpc.py, histogram.py) for the compatibility tests: an
# SPDK source tree. Tests that need it skip, saying so, when it is absent.
SPDK_DIR  ?= $(shell [ -f /opt/spdk/scripts/rpc.py ] && echo /opt/spdk)
export SPDK_DIR

.PHONY: all build run test test-fast deps vet fmt-check bench fuzz clean

all: build

build:
	$(GO) build ./...
	$(GO) build -o build/hyperpath ./app/hyperpath
	$(GO) build -o build/hpctl ./app/hpctl
	$(GO) build -o build/bdevperf ./app/bdevperf

## run: the daemon on its embedded default (64 MiB RAM bdev Malloc0 exported as
## vhost-user-blk build/vhost.0 and NVMe/TCP 127.0.0.1:4420), RPC on $(SOCK)
run: build
	./build/hyperpath -r $(SOCK) -S build $(ARGS)

## deps: Go modules and the Debian packages the tests drive as real peers
deps:
	$(GO) mod download
	./test/install-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## test: everything CI runs (vet, gofmt, race tests, invariants build)
test: deps fmt-check vet
	$(GO) test -race -timeout 25m ./...
	$(GO) test -tags invariants -short -timeout 10m ./reactor/... ./bdev/... ./vhost/... ./nvmf/...

## test-fast: unit tests only, no guests, no race detector
test-fast:
	$(GO) test -short ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./reactor/ ./bdev/... ./internal/uring/

clean:
	rm -rf build
