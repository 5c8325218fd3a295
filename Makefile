# treeshift — see README.md. Everything runs without privileges: the demo and
# the tests stage systems under temporary --root directories.
GO ?= go
BIN := bin/treeshift
FUZZTIME ?= 20s

.PHONY: build test vet man demo demo-cluster demo-cluster-etcd bench bench-go bench-cluster fuzz crash mutants clean

build: man
	$(GO) build -o $(BIN) ./cmd/treeshift

# treeshift(1), generated from the command-line model; a test checks that the
# committed page is current.
man:
	$(GO) run ./internal/mangen docs/treeshift.1

# vet, formatting, and every test (unit, property, testscript) under -race,
# with a summary of skipped tests at the end. The race detector makes every
# process it instruments sleep 1 s at exit by default; the testscripts start
# hundreds of treeshift processes, so that sleep is turned off.
# FAIL_SKIPS=REGEXP makes a skip whose reason matches fail the run (CI).
FAIL_SKIPS ?=
test: vet
	GORACE=atexit_sleep_ms=0 $(GO) run ./internal/testrun $(if $(FAIL_SKIPS),-fail-skips '$(FAIL_SKIPS)') -race -count=1 ./...

vet:
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

demo: build
	TREESHIFT=$(BIN) ./demo/demo.sh

# A 3-member cluster rolled to the new format, stage by stage.
demo-cluster: build
	TREESHIFT=$(BIN) ./demo/cluster.sh

# 5 members with their agents over a 3-node etcd (Debian's etcd-server):
# parallel rolls under quorum, an agent killed, the refusal and the recovery.
demo-cluster-etcd: build
	TREESHIFT=$(BIN) ./demo/cluster-etcd.sh

# Durability at every point (docs/DURABILITY.md), where make test takes a
# sample: the power-loss explorer over every crash state it enumerates, and
# with each sync left out; errors injected at every durable call; the
# faultinject binary killed at every durable step (update, dry run, cluster
# stages); power losses on loop devices at every step (as root; dm-flakey
# where device-mapper exists). Without -race: the runs are many, and each
# is a run make test already has under the race detector. Prints the
# figures, and the reason of each test skipped.
CRASH_TESTS = PowerLoss|EverySyncIsNeeded|InjectedErrors|CrashAtEveryDurableStep|PreviousRelease|DryRunPredicts|OutsideWriter|StagesKilledAtEveryStep
crash:
	TREESHIFT_CRASH_ALL=1 $(GO) run ./internal/testrun -show '$(CRASH_TESTS)' -count=1 -timeout 60m -run '$(CRASH_TESTS)' ./internal/powerloss ./migrate ./cluster

# Each safety of the transition taken out in turn, on a copy of the module:
# a test must fail for each (internal/mutants).
mutants:
	$(GO) run ./internal/mutants

# End-to-end update timings against cp -a + sync -f, every case measured
# side by side in one run and printed as one table: update, floor, ratio,
# CPU, peak RSS, flushes, nothing-to-do (docs/PERFORMANCE.md). The
# filesystem is TMPDIR's, or a fresh ext4 image with FRESH_EXT4=1 (root).
# BENCH_CASES=100x1000 adds the large case (minutes). bench-go runs the Go
# micro-benchmarks.
BENCH_CASES ?= 10x20 100x100 1x10000
bench: build
	TREESHIFT=$(BIN) ./bench/update.sh $(BENCH_CASES)

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -skip '^BenchmarkClusterUpgrade$$' ./...

# A whole cluster upgrade over a 3-node etcd (Debian's etcd-server): 20
# members of 5 trees × 20 services, each with its agent, rolled 10 at a
# time; total time and its share in coordination vs transitions.
# BENCH_MEMBERS, BENCH_TREES and BENCH_SERVICES change the size.
bench-cluster:
	$(GO) test -run '^$$' -bench '^BenchmarkClusterUpgrade$$' -benchtime 1x ./cluster/

# Run every fuzz target for FUZZTIME each (go test runs one target at a time).
# Minimizing a new cdb input (at least 2048 bytes) can take the default 60s
# per input, during which nothing new is tried: keep minimization short.
FUZZFLAGS = -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzOpen$$' ./internal/cdb
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParse$$' ./internal/frontend
	for f in FuzzV1 FuzzV2 FuzzV3; do \
		$(GO) test $(FUZZFLAGS) -fuzz "^$$f\$$" ./format || exit 1; \
	done

clean:
	rm -rf bin
