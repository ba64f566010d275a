# runsc-shim: build, install, test, demo and benchmark containerd-shim-runsc-v1.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PREFIX ?= /usr/local
# Where `make install` puts config/runsc.toml if nothing is there yet (empty: nowhere).
RUNSC_TOML ?= /etc/containerd/runsc.toml
CARGO ?= cargo
PROFILE ?= release
SHIM := containerd-shim-runsc-v1
BENCH_ITERS ?= 20
# CRI pods per handler in make bench (each about a second).
BENCH_POD_ITERS ?= 10
# Seconds each fuzz target runs: in `make test` (fuzz-smoke) and in
# `make fuzz` (13 targets: about an hour).
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SECONDS ?= 280
# Seconds of each containerd-stress load: make soak (3 handlers x 2 modes,
# then ours with a fault a minute) and its short form in make test (our
# shim only; a fault every 12 s in a 100 s load, every kind but the shim
# kill and the containerd restart, whose open findings the README lists).
SOAK_SECONDS ?= 1800
SOAK_SMOKE_SECONDS ?= 60
# Seconds one test command may run (building its tests included) before it
# is killed: a hang fails CI with its output instead of eating CI's time.
# ctr calls made through the harness have their own, shorter bound
# (CTR_LIMIT in tests/src/containerd.rs).
TIER_LIMIT ?= 1800

# What the full tiers run on: containerd 2.3 (the LTS) and runsc
# 0.0~20240729, from scripts/versions.sh's caches, first on PATH.
LTS_PATH = $$(./scripts/versions.sh | awk '$$1 == "containerd-2.3" || $$1 == "runsc-2024" {printf "%s:", $$2}')
# The same with containerd-stress (built from containerd 2.3.7's module).
SOAK_PATH = $$(./scripts/versions.sh | awk '$$1 == "containerd-2.3" || $$1 == "runsc-2024" || $$1 == "containerd-stress" {printf "%s:", $$2}')
# The tiers of `make test`, in order; each prints its time.
TIERS := deps lint unit integration fuzz-smoke soak-smoke matrix critest docker vm bench-smoke

.PHONY: all deps build install lint unit integration fuzz-smoke fuzz soak-smoke soak matrix critest docker vm test demo demo-pod bench bench-smoke clean

all: build

deps: ## Install system packages (containerd, runc, runsc, busybox, protoc) and fetch/build the other containerd, runsc and cri-tools versions into caches; idempotent
	./scripts/deps.sh
	./scripts/versions.sh >/dev/null

build: ## Build the shim (release)
	$(CARGO) build --locked --profile $(PROFILE) -p containerd-shim-runsc

install: build ## Install the shim into $(PREFIX)/bin, and config/runsc.toml as $(RUNSC_TOML) unless that exists
	install -D -m 0755 target/$(PROFILE)/$(SHIM) $(DESTDIR)$(PREFIX)/bin/$(SHIM)
	if [ -n "$(RUNSC_TOML)" ]; then \
	  if [ -e "$(DESTDIR)$(RUNSC_TOML)" ]; then \
	    echo "install: keeping the existing $(DESTDIR)$(RUNSC_TOML)"; \
	  else \
	    install -D -m 0644 config/runsc.toml "$(DESTDIR)$(RUNSC_TOML)"; \
	  fi; \
	fi

lint: ## rustfmt, clippy and rustdoc, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets --all-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps --all-features

unit: ## Tests that need no containerd and no runsc: every crate's unit tests, the shim's service tier (shim/tests/service, a fake runsc), the fuzz corpus replayed (shim/tests/fuzz_corpus.rs) and shim-io's io/tests (real FIFOs, ptys and /bin/busybox)
	$(CARGO) test --locked --workspace --lib --bins
	$(CARGO) test --locked -p containerd-shim-runsc --test service --test fuzz_corpus
	$(CARGO) test --locked -p shim-io --test '*'

integration: build ## Real runsc and containerd suites (root), on containerd 2.3 + runsc 0.0~20240729
	path="$(LTS_PATH)"; \
	PATH="$$path$$PATH" CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 RUNSC_SHIM_DIR=$(CURDIR)/target/$(PROFILE) \
	  timeout -k 30 $(TIER_LIMIT) $(CARGO) test --locked --workspace --tests -- --test-threads=2

matrix: build ## e2e/CRI tiers on the other containerd x runsc pairs (fetched into .cache/versions)
	./scripts/matrix.sh target/$(PROFILE)

critest: build ## cri-tools' critest v1.37.0 against containerd 2.3's CRI with handler runsc; fails on any failure not in integration/critest/expected-failures.txt
	./scripts/critest.sh target/$(PROFILE)

docker: build ## Docker Engine 26.1.5 (Debian 13's, cached) with a private dockerd per test, on runsc 0.0~20240729 then 0.0~20221219: everyday docker commands with --runtime runsc (our shim) and runc (the control), Docker's bridge, -p and user networks included
	./scripts/docker-tier.sh target/$(PROFILE)
	DOCKER_TIER_RUNSC=runsc-2022 ./scripts/docker-tier.sh target/$(PROFILE)

vm: build ## cgroup v2 + systemd: a Debian 13 VM (QEMU software emulation, image cached in .cache/vm) runs the e2e smoke set, the CRI tier on the cgroupfs and systemd drivers and the systemd tests, on containerd 2.3 and 1.7
	./scripts/vm/tier.sh target/$(PROFILE)

# `make test` runs the vm tier in the background from the integration tier
# on: its guest is one QEMU thread with a kernel of its own, so it shares
# only CPU time with the host tiers (whose leak checks cannot see it). Its
# output goes to target/vm-tier.log and is printed when it ends, failed or
# not (`wait` is guarded: under -e a failed bare wait would exit first).
test: ## Everything CI runs: the tiers in TIERS, each timed (vm alongside the others)
	@mkdir -p target; vm_log=target/vm-tier.log; vm_pid=; \
	for t in $(TIERS); do \
	  if [ $$t = vm ]; then continue; fi; \
	  if [ $$t = integration ]; then \
	    setsid bash -c 'start=$$SECONDS; $(MAKE) --no-print-directory vm; rc=$$?; echo "tier vm: $$((SECONDS - start)) s (alongside)"; exit $$rc' > $$vm_log 2>&1 & vm_pid=$$!; \
	  fi; \
	  start=$$SECONDS; \
	  $(MAKE) --no-print-directory $$t || { echo "tier $$t: FAILED after $$((SECONDS - start)) s"; \
	    [ -z "$$vm_pid" ] || { kill -TERM -- -$$vm_pid 2>/dev/null; wait $$vm_pid; }; exit 1; }; \
	  echo "tier $$t: $$((SECONDS - start)) s"; \
	done; \
	if [ -n "$$vm_pid" ]; then \
	  start=$$SECONDS; rc=0; wait $$vm_pid || rc=$$?; cat $$vm_log; \
	  echo "tier vm: waited $$((SECONDS - start)) s after the others"; \
	  [ $$rc = 0 ] || { echo "tier vm: FAILED"; exit 1; }; \
	fi

demo: deps build ## Private containerd + our shim + busybox under gVisor
	./scripts/demo.sh target/$(PROFILE)

demo-pod: deps build ## A CRI pod under gVisor serving HTTP on its pod IP (CNI bridge)
	./scripts/demo.sh target/$(PROFILE) demo_pod

bench: deps build ## Compare our shim with Go's runc shim driving runsc and bare runsc, on the system runsc and runsc 0.0~20240729; then CRI pods on task API v3 against v2 (containerd 2.3)
	$(CARGO) run --locked --release -p integration --bin bench -- --iterations $(BENCH_ITERS) --shim-dir target/$(PROFILE) --out target/bench-results.json
	dir=$$(./scripts/versions.sh | awk '$$1 == "runsc-2024" {print $$2}') || dir=""; \
	if [ -n "$$dir" ]; then \
	  $(CARGO) run --locked --release -p integration --bin bench -- --iterations $(BENCH_ITERS) --shim-dir target/$(PROFILE) --runsc-dir "$$dir" --out target/bench-results-runsc-2024.json; \
	else \
	  echo "bench: runsc 0.0~20240729 not available (scripts/versions.sh failed): skipped"; \
	fi
	path="$(LTS_PATH)"; PATH="$$path$$PATH" CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
	  $(CARGO) run --locked --release -p integration --bin bench_pods -- --iterations $(BENCH_POD_ITERS) --shim-dir $(CURDIR)/target/$(PROFILE) --out target/bench-pods.json

fuzz-smoke: ## Every fuzz target in fuzz/ (libFuzzer, nightly) for FUZZ_SMOKE_SECONDS each, from the seeds and the corpus kept so far
	./scripts/fuzz.sh $(FUZZ_SMOKE_SECONDS)

fuzz: ## Every fuzz target for FUZZ_SECONDS each (about an hour in all); findings are left in target/fuzz/artifacts
	./scripts/fuzz.sh $(FUZZ_SECONDS)

soak-smoke: build ## containerd-stress through our shim for SOAK_SMOKE_SECONDS per mode (plain, exec), then 110 s with a fault every 12 s (each kind once), judged as make soak judges it
	path="$(SOAK_PATH)"; PATH="$$path$$PATH" CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
	  $(CARGO) run --locked --release -p integration --bin soak -- --seconds $(SOAK_SMOKE_SECONDS) --sample-every 20 --handlers ours \
	  --faults-every 12 --fault-seconds 110 --out target/soak-smoke.json

soak: deps build ## containerd-stress (4 workers, plain and exec mode, SOAK_SECONDS each) through our shim, the Go shim driving runsc and runc, then ours with a fault a minute: rates, resources every 5 minutes, exits checked; fails if ours errs, loses an exit, hangs, grows or leaks
	path="$(SOAK_PATH)"; PATH="$$path$$PATH" CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
	  $(CARGO) run --locked --release -p integration --bin soak -- --seconds $(SOAK_SECONDS) --sample-every 300 \
	  --faults-every 60 --out target/soak-results.json

bench-smoke: build ## One-iteration benchmark run so the harness cannot rot
	$(CARGO) run --locked --release -p integration --bin bench -- --iterations 1 --shim-dir target/$(PROFILE) --out target/bench-smoke.json
	path="$(LTS_PATH)"; PATH="$$path$$PATH" CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
	  $(CARGO) run --locked --release -p integration --bin bench_pods -- --iterations 1 --shim-dir $(CURDIR)/target/$(PROFILE) --out target/bench-pods-smoke.json

clean:
	$(CARGO) clean
