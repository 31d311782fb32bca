# blindstore: `make run` starts a server on the embedded store, `make test`
# runs the whole test suite (vet, gofmt, race detector).
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Race-enabled tests on a 2-core machine: bound the whole run.
TESTFLAGS ?= -race -timeout 20m

.PHONY: all build run test vet fmt-check tidy-check apilint web-test app app-test bench bench-scale chaos clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Serves on 127.0.0.1:7878 with data (and a generated bucket key) in ./data.
run: build
	./$(BIN)/blindstored serve

vet:
	$(GO) vet ./...

# go.mod and go.sum as `go mod tidy` leaves them: direct imports are
# not marked indirect, and nothing unused lingers.
tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod or go.sum is not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Lints blobstore/httpapi/openapi.json with Redocly's recommended rules and
# Spectral's spectral:oas; a warning fails as an error does (configs and the
# pinned linters in tools/apilint). Needs Node and npm; npm ci installs the
# linters from the lockfile, lifecycle scripts off, when node_modules is
# missing or older than the lockfile.
APILINT := tools/apilint
apilint: $(APILINT)/node_modules/.package-lock.json
	$(APILINT)/lint.sh blobstore/httpapi/openapi.json

$(APILINT)/node_modules/.package-lock.json: $(APILINT)/package.json $(APILINT)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "apilint: npm not found: install Node.js and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(APILINT) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# The TypeScript client (web/): type checks, then its tests: every entry of
# docs/vectors.json, and interop with blind over a real blindstored (the
# binaries just built). npm ci installs from the lockfile, lifecycle
# scripts off, when node_modules is missing or older than the lockfile.
WEB := web
web-test: build $(WEB)/node_modules/.package-lock.json
	cd $(WEB) && npm run --silent typecheck && BLINDSTORE_BIN=$(CURDIR)/$(BIN) npm test

$(WEB)/node_modules/.package-lock.json: $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "web-test: npm not found: install Node.js 20 or later and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(WEB) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# The browser app (web/app): `make app` rebuilds its bundle into
# internal/webapp/dist, which the binary embeds (commit it with the
# sources). app-test type checks it, checks that the committed bundle is
# the build of the committed sources (and within its gzip budget), then
# drives the app in Debian's headless Chromium against the blindstored just
# built, with and without a token issuer (screenshots in
# web/app/test-output/). Without /usr/bin/chromium it skips, and fails
# under CI.
APP := web/app
app: $(WEB)/node_modules/.package-lock.json $(APP)/node_modules/.package-lock.json
	cd $(APP) && npm run --silent build

app-test: build $(WEB)/node_modules/.package-lock.json $(APP)/node_modules/.package-lock.json
	cd $(APP) && npm run --silent typecheck && npm run --silent check-bundle && BLINDSTORE_BIN=$(CURDIR)/$(BIN) npm test

$(APP)/node_modules/.package-lock.json: $(APP)/package.json $(APP)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "app-test: npm not found: install Node.js 20 or later and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(APP) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# Tests that need PostgreSQL or Redis skip when those are not reachable
# (and fail under CI); the list of what was skipped is printed at the end.
SKIPLOG := $(CURDIR)/.test-skipped.log
test: vet fmt-check tidy-check apilint web-test app-test
	@rm -f $(SKIPLOG)
	@BLINDSTORE_SKIP_LOG=$(SKIPLOG) $(GO) test $(TESTFLAGS) ./...; rc=$$?; \
	if [ -s $(SKIPLOG) ]; then \
	  echo; echo "Skipped, because a service was not reachable:"; sed 's/^/  /' $(SKIPLOG); \
	fi; rm -f $(SKIPLOG); exit $$rc

# Measures blindstore against the raw stores, a bare HTTP server, nginx
# serving the same blocks as files (the peer row: needs nginx and wrk) and
# restic, in a few minutes; prints a table and writes results/bench-<time>.json, .png
# and results/latest.json. PostgreSQL rows use BLINDSTORE_BENCH_POSTGRES
# (default: the local server). More flags: BENCHFLAGS='-rows block -duration 3s'
# or BENCHFLAGS='-inprocess -cpuprofile cpu.prof'; ./bin/blindbench -h lists them.
BENCHFLAGS ?=
bench: build
	./$(BIN)/blindbench -bin $(BIN) -out results $(BENCHFLAGS)

# The rows the default time cap of make bench skips: the scale row builds a
# 100,000-file account (up to -scale-build, 3 minutes) and then measures a
# one-file change and a login in it. Its own cap, BENCH_SCALE_MAX, bounds
# the run; the results go where make bench writes them.
BENCH_SCALE_MAX ?= 20m
bench-scale: build
	./$(BIN)/blindbench -bin $(BIN) -out results -rows scale -max-total $(BENCH_SCALE_MAX) $(BENCHFLAGS)

# Crash harness: a write and read load against real blindstored processes
# while random SIGKILLs hit them, and Redis and PostgreSQL on the
# PostgreSQL run; at the end every acknowledged block is read back with its
# ETag and the figures are printed (lost must be 0). CHAOS_DURATION is per
# store; the PostgreSQL run needs the server's initdb and redis-server.
CHAOS_DURATION ?= 2m
chaos:
	BLINDSTORE_CHAOS=$(CHAOS_DURATION) $(GO) test -count=1 -v -timeout 60m -run '^TestChaos' ./cmd/blindstored

clean:
	rm -rf $(BIN)
