# sluice: every target needs only Go (staticcheck comes through `go tool`, pinned in go.mod).
# `make ci` is what .ci/run calls.

GO ?= go
# gofmt from the same toolchain as $(GO), so a PATH holding only `go` is enough.
GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt

# No target may edit go.mod or go.sum behind your back: tidy-check reports instead.
# (Appended to, not replacing, whatever GOFLAGS the environment sets.)
export GOFLAGS := $(strip $(GOFLAGS) -mod=readonly)

# The race detector needs cgo, which needs a C compiler. Without one the tests still run,
# without -race, and `make test` says so. Force it either way with RACE=-race or RACE=.
RACE ?= $(if $(filter 1,$(shell $(GO) env CGO_ENABLED)),-race,)

# Each test binary (package) must finish within TEST_TIMEOUT.
TEST_TIMEOUT ?= 10m

# Native fuzz targets run by fuzz-smoke, as package:Target:budget triples. Budgets are
# execution counts (Nx), not durations: Go 1.26's fuzz coordinator can fail a run with a bare
# "context deadline exceeded" when a duration expires under CPU contention (golang/go#75804,
# fixed in Go 1.27); a count has no deadline to race. Each budget is 10 to 30 seconds on 2 cores.
# FUZZTIME, when set, overrides every budget (e.g. make fuzz-smoke FUZZTIME=5m).
FUZZ_TARGETS ?= \
	./frame:FuzzDecodeFrame:1000000x \
	./segment:FuzzRecover:10000x \
	./index:FuzzTableLookup:200000x \
	./fuzz:FuzzLogOps:600x \
	./shardmap:FuzzShardMap:15000x \
	./shardmap:FuzzDecode:500000x \
	./server:FuzzCBORToJSON:100000x \
	./server:FuzzJSONToCBOR:100000x \
	./server:FuzzDecodePutRecords:60000x \
	./internal/jsonscan:FuzzAppendString:100000x \
	./server:FuzzEventStream:60000x \
	./server:FuzzOperations:40000x \
	./server:FuzzNativePut:40000x \
	./server:FuzzSigV4Parse:50000x \
	./server/wire:FuzzReadPut:200000x \
	./server/wire:FuzzReadGetRequest:200000x \
	./server/wire:FuzzReadMessage:100000x \
	./tools/load:FuzzDecodeRecords:50000x \
	./tools/load:FuzzDecodePutRecords:50000x \
	./tools/load:FuzzReadEvent:50000x \
	./iam:FuzzParsePolicy:50000x \
	./iam:FuzzDecide:50000x \
	./multiraft:FuzzDecodeBatch:100000x \
	./kpl:FuzzDecode:100000x
FUZZTIME ?=

# cross: the packages that must build on every platform of CROSS_PLATFORMS (GOOS/GOARCH
# pairs, cgo off), and be vetted for the darwin and windows ones. The storage engine builds on
# Linux only; make depcheck keeps it out of these packages' imports.
CROSS_PKGS ?= ./client/... ./tools/cli/...
CROSS_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

# Benchmarks: BENCH selects them, BENCHTIME sets -benchtime (empty: the default 1s).
BENCH ?= .
BENCHTIME ?=
# Arguments for `make run`, e.g. make run ARGS='--durability=interval=200ms'.
ARGS ?=

.PHONY: help fmt fmt-check vet lint depcheck cross tidy-check test fuzz-smoke crash cluster-chaos bench bench-report run ci
.PHONY: overload soak soak-short nightly nightly-overload nightly-soak

help:
	@echo 'make ci          fmt-check vet lint depcheck cross tidy-check test fuzz-smoke overload soak-short (what .ci/run runs)'
	@echo 'make fmt         gofmt -w every Go file'
	@echo 'make fmt-check   fail listing files gofmt would change'
	@echo 'make vet         go vet ./...'
	@echo 'make lint        staticcheck ./... (go tool, pinned in go.mod)'
	@echo 'make depcheck    fail on an import edge that breaks the package layering'
	@echo 'make cross       build CROSS_PKGS (client, tools/cli) for linux, darwin, windows x amd64, arm64; vet them for darwin, windows'
	@echo 'make tidy-check  fail if go mod tidy would change go.mod or go.sum'
	@echo 'make test        all tests, -race -shuffle=on, crash tests included'
	@echo 'make fuzz-smoke  each fuzz target in FUZZ_TARGETS for its budget (or FUZZTIME)'
	@echo 'make crash       only the crash tests of ./segment'
	@echo 'make cluster-chaos  mixed rounds of the cluster faults (TestChaos) for CHAOS_DURATION (default 10m)'
	@echo 'make nightly     the long runs: power cuts through FUSE (POWERCUT_ITERATIONS per mode, default 500), 20,001 storage power cuts and 1,000 bit flips, overload at 30s, the 2-hour soak, five nodes with 2,000 shards'
	@echo 'make bench       storage benchmarks and the bench suite'
	@echo 'make bench-report  every bench suite, written to bench/results/latest (report.md, PNGs)'
	@echo 'make run         go run ./cmd/sluice serve $$ARGS'
	@echo 'make overload    overload, idle-subscriber and many-client tests against a real server, without -race (OVERLOAD=10s per phase)'
	@echo 'make soak        the soak test for SOAK (default 10m; needs root for its tmpfs), its plot in SOAK_OUT'

fmt:
	$(GOFMT) -l -w .

fmt-check:
	@out=$$($(GOFMT) -l .) || exit 1; \
	if [ -n "$$out" ]; then \
		echo 'gofmt would change these files (run make fmt):'; echo "$$out"; exit 1; \
	fi

vet:
	$(GO) vet ./...

lint:
	$(GO) tool staticcheck ./...

# -count=1: the test reads every package's imports through the go command, which the test
# cache does not track.
depcheck:
	$(GO) test -count=1 ./internal/depcheck

# Only build and vet: the tests of CROSS_PKGS start an in-process server, which needs Linux.
cross:
	@set -e; for p in $(CROSS_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build $(CROSS_PKGS)"; \
		GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build $(CROSS_PKGS); \
		case $$os in darwin|windows) \
			echo "GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) vet $(CROSS_PKGS)"; \
			GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) vet $(CROSS_PKGS);; \
		esac; \
	done

# go mod tidy -diff leaves go.mod and go.sum untouched, prints what tidy would change and
# fails if anything would.
tidy-check:
	@$(GO) mod tidy -diff || { echo 'go.mod/go.sum are not tidy: run go mod tidy'; exit 1; }

test:
	@if [ -z '$(RACE)' ]; then echo 'warning: cgo is off (no C compiler?): running the tests WITHOUT -race'; fi
	$(GO) test $(RACE) -shuffle=on -count=1 -timeout=$(TEST_TIMEOUT) ./...

# A target missing from its package fails: go test -fuzz would pass silently.
fuzz-smoke:
	@set -e; for pt in $(FUZZ_TARGETS); do \
		pkg=$${pt%%:*}; rest=$${pt#*:}; target=$${rest%%:*}; budget=$${rest#*:}; \
		if [ -n '$(FUZZTIME)' ]; then budget='$(FUZZTIME)'; fi; \
		if ! $(GO) test -list="^$$target$$" $$pkg | grep -qx "$$target"; then \
			echo "fuzz-smoke: no fuzz target $$target in $$pkg (listed in FUZZ_TARGETS)"; exit 1; \
		fi; \
		echo "$(GO) test -run='^\$$' -fuzz='^$$target\$$' -fuzztime=$$budget $$pkg"; \
		$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$$budget $$pkg; \
	done

crash:
	$(GO) test $(RACE) -count=1 -run 'Crash' ./segment

# The long randomized cluster fault run: etcd and four sluice serve processes in three zones
# (--replicas 3), rounds of kill -9, wiped directories, SIGSTOP, partitions, etcd outages,
# node additions, drains and reshards under load from the AWS SDK and the Go client, then
# the invariant checker. make test runs the same test for 10 s. CHAOS_SEED replays a run's
# schedule (its seed is logged).
CHAOS_DURATION ?= 10m
CHAOS_SEED ?=
cluster-chaos:
	SLUICE_CHAOS_DURATION=$(CHAOS_DURATION) SLUICE_CHAOS_SEED=$(CHAOS_SEED) \
		$(GO) test $(RACE) -count=1 -v -timeout=0 -run '^TestChaos$$' ./cluster/faults
# nightly: the long runs. Each adds itself with a line `nightly: <its target>`.
.PHONY: nightly nightly-powercut
nightly: nightly-powercut

# Power cuts through FUSE (tests/powercut): POWERCUT_ITERATIONS restarts per durability mode
# (make ci runs 3). Needs /dev/fuse and root; fails rather than skips without them.
POWERCUT_ITERATIONS ?= 500
nightly-powercut:
	SLUICE_REQUIRE_FUSE=1 SLUICE_POWERCUT_ITERATIONS=$(POWERCUT_ITERATIONS) $(GO) test -count=1 -timeout=0 -v -run '^TestPowerCut' ./tests/powercut

bench:
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem $(if $(BENCHTIME),-benchtime=$(BENCHTIME)) ./segment ./index ./shardmap ./stream ./iam
	$(GO) run ./bench -suite storage

# A report to commit: report.md with the tables and PNG figures, and results.json.
# BENCH_DURATION sets the time per figure (-duration; empty: the bench default, 2s).
BENCH_DURATION ?=
bench-report:
	$(GO) run ./bench -suite all -report bench/results/latest $(if $(BENCH_DURATION),-duration=$(BENCH_DURATION))

run:
	$(GO) run ./cmd/sluice serve $(ARGS)

# Overload, idle subscribers, many clients: real `sluice serve` processes under load. Without
# the race detector, which would slow the load below the overload it is meant to be
# (cmd/sluice/overload_test.go). OVERLOAD sets each test's load phase.
OVERLOAD ?= 10s
overload:
	SLUICE_OVERLOAD_DURATION=$(OVERLOAD) $(GO) test -count=1 -timeout=$(TEST_TIMEOUT) -v \
		-run '^(TestShardOverload|TestServerOverload|TestIdleSubscribers|TestManyClients)$$' ./cmd/sluice

# The soak (cmd/sluice/soak_test.go, build tag soak): SOAK long, its plot (soak.png) and
# samples (soak.tsv) in SOAK_OUT (empty: a new directory in the system's temporary directory,
# named in the log). It mounts a tmpfs, so it needs root. SOAK_TIMEOUT must exceed SOAK.
SOAK ?= 10m
SOAK_OUT ?=
SOAK_TIMEOUT ?= 3h
soak:
	SLUICE_SOAK_DURATION=$(SOAK) SLUICE_SOAK_OUT=$(SOAK_OUT) $(GO) test -tags soak -count=1 -v \
		-timeout=$(SOAK_TIMEOUT) -run '^TestSoak$$' ./cmd/sluice

# The short soak of make ci.
soak-short:
	$(MAKE) soak SOAK=75s SOAK_TIMEOUT=10m

# make nightly runs the long versions. Each part is a prerequisite of its own, so that other
# parts are added as lines of their own. The NIGHTLY_* variables shorten a part, to check that
# it starts and runs (such as make nightly-soak NIGHTLY_SOAK=30s).
NIGHTLY_OVERLOAD ?= 30s
NIGHTLY_SOAK ?= 2h
NIGHTLY_SOAK_TIMEOUT ?= 3h
nightly: nightly-overload
nightly: nightly-soak
nightly-overload:
	$(MAKE) overload OVERLOAD=$(NIGHTLY_OVERLOAD)
nightly-soak:
	$(MAKE) soak SOAK=$(NIGHTLY_SOAK) SOAK_TIMEOUT=$(NIGHTLY_SOAK_TIMEOUT)

# The storage core's long runs: 20,001 power cuts through the fault file layer (6,667 per
# durability mode, about 0.4 s each here) and 1,000 random bit flips, each recovery checked.
# Five real nodes holding 50 streams of 40 shards (make ci runs 10 × 4): placement, one
# leader per shard, a record per stream read back, idle Raft traffic (docs/CLUSTER.md, "Scale").
.PHONY: nightly-scale
nightly: nightly-scale
nightly-scale:
	SLUICE_SCALE_STREAMS=50 SLUICE_SCALE_SHARDS=40 $(GO) test -count=1 -timeout=0 -v -run '^TestClusterScale$$' ./cmd/sluice

.PHONY: nightly-storage
NIGHTLY_STORAGE_CUTS ?= 6667
NIGHTLY_BITFLIPS ?= 1000
nightly: nightly-storage
nightly-storage:
	SLUICE_SEGMENT_POWERCUT_ROUNDS=$(NIGHTLY_STORAGE_CUTS) SLUICE_BITFLIP_ROUNDS=$(NIGHTLY_BITFLIPS) $(GO) test $(RACE) -count=1 -timeout=0 -v -run '^(TestPowerCut|TestRandomBitFlips)$$' ./segment

ci: fmt-check vet lint depcheck cross tidy-check test fuzz-smoke overload soak-short
