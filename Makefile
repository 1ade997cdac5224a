# Instance Portal. `make run` serves examples/portal.yaml on this machine;
# `make test` runs every check and test (installing, as root, the Debian
# packages they need). See README.md.

GO          ?= go
BIN         ?= bin/caddy
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
XCADDY      ?= github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5
FUZZTIME    ?= 10s
# The flags of the shipped binary, for `make build`, `make xcaddy` (which
# passes them to xcaddy: setting them replaces xcaddy's own defaults, hence
# -w -s, -trimpath and the tags, which are those defaults) and bench/lib.sh.
# -linkmode=internal: go-nvml uses cgo, which makes Go link with gcc by
# default; that layout keeps ~12 MB more of the binary resident (67 vs 55 MB
# RSS at idle on the same Caddyfile). Go's own linker handles go-nvml (NVML
# checked on an H200). The integration tests' binary uses it too.
GO_LDFLAGS  ?= -linkmode=internal -w -s
RELEASE_FLAGS = -trimpath -ldflags='$(GO_LDFLAGS)' -tags nobadger,nomysql,nopgx
# go-nvml's C headers mark NVML calls deprecated, and gcc prints ~150 lines of
# warnings that look like errors; they are silenced for our builds only (the
# variable is set on the build command, not exported).
BUILD_ENV   = CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations
# Every bash script we ship or run.
SHELL_SCRIPTS = $(shell git ls-files 'rootfs/opt/*' 'rootfs/usr/local/bin/*' '*.sh' .ci/run 2>/dev/null | grep -v '\.conf$$')

.PHONY: all build xcaddy run test deps lint unit integration fuzz bench clean

all: build

build:
	@test -x $(BIN) || echo "First build: compiling Caddy, its modules and cgo for NVML takes a few minutes."
	$(BUILD_ENV) $(GO) build $(RELEASE_FLAGS) -o $(BIN) ./cmd/caddy

# The production build: the same modules through xcaddy (the Dockerfile runs
# this). xcaddy turns cgo off unless CGO_ENABLED=1, and a binary without cgo
# has no NVML: its GPU panel says "built without cgo".
xcaddy:
	$(BUILD_ENV) XCADDY_GO_BUILD_FLAGS="$(RELEASE_FLAGS)" $(GO) run $(XCADDY) build v2.11.9 --output $(BIN) \
		--with github.com/instanceportal/portal@v0.0.0-00010101000000-000000000000=.

run: build
	./scripts/run-example.sh $(BIN)

test: deps lint unit integration

deps:
	./scripts/install-test-deps.sh

lint:
	@echo "== gofmt"; out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "== go vet"; $(BUILD_ENV) $(GO) vet ./...
	@echo "== staticcheck"; $(BUILD_ENV) $(GO) run $(STATICCHECK) ./...
	@echo "== shellcheck"; shellcheck -x $(SHELL_SCRIPTS)

# Unit, golden and fuzz-seed tests, with the race detector.
unit:
	$(BUILD_ENV) $(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /integration_test)

# The real binary, real supervisord, real processes on 127.0.0.1.
integration:
	$(BUILD_ENV) $(GO) test -count=1 -timeout 30m ./integration_test/

# Each fuzz target for FUZZTIME (seeds always run as part of `unit`).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# Load runs side by side with stock Caddy (each script prints its table).
bench:
	./scripts/install-test-deps.sh --bench
	./bench/proxy.sh
	./bench/auth.sh
	./bench/logs.sh

clean:
	rm -rf bin bench/bin .run
