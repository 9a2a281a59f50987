# edge-node: the two set-up commands a fresh Debian 12 / Ubuntu 24.04 machine needs are
# `make demo` and `make test`. Both install what they need first (idempotently).

SHELL := /bin/bash
CARGO ?= cargo
# Mesa (lavapipe) wants a runtime dir; keep shader caches inside the tree.
export XDG_RUNTIME_DIR ?= /tmp/edge-node-runtime
export XDG_CACHE_HOME ?= $(CURDIR)/.cache/xdg
export EDGE_NODE_ASSET_DIR ?= $(CURDIR)/.cache/assets
export ORT_DYLIB_PATH ?= $(CURDIR)/.cache/onnxruntime/libonnxruntime.so.1.31.1

DEMO_SECONDS ?= 10
BENCH_SECONDS ?= 20

.PHONY: setup build demo test test-relay lint bench bench-1080p clean runtime-dir

setup: runtime-dir
	bash scripts/setup.sh

runtime-dir:
	@mkdir -p $(XDG_RUNTIME_DIR) $(XDG_CACHE_HOME) && chmod 700 $(XDG_RUNTIME_DIR)

build: setup
	$(CARGO) build --release --bin edge-node

# Runs the node on the embedded default (built-in test show, sample campaign) with two
# local viewers, prints per-stage and per-viewer latency, writes one snapshot per viewer.
demo: build
	./target/release/edge-node demo --duration $(DEMO_SECONDS) --out out/demo

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/lint-deploy.sh

# Dev profile (dependencies optimised, see Cargo.toml) so tests share clippy-free artifacts fast.
# After cargo's own lines: totals over all test binaries, and every ignored test with its reason.
# --no-fail-fast: one failing binary does not hide the results of the others. The fuzz crate
# (its own workspace) replays every corpus file and crash reproducer on stable: a known crash
# fails the suite.
test: lint
	@mkdir -p out
	@set -o pipefail; status=0; \
	$(CARGO) test --workspace --no-fail-fast 2>&1 | tee out/test.log || status=$$?; \
	$(CARGO) test --manifest-path fuzz/Cargo.toml --lib 2>&1 | tee -a out/test.log || status=$$?; \
	bash scripts/test-summary.sh out/test.log; exit $$status

# Beyond one node: builds the real moq-relay (crates.io, about 9 min on 2 cores the first time)
# and runs the loopback tests in which viewers receive a node's rendering through it. Kept out of
# `make test` because of that build; there they are reported as ignored, with this target named.
test-relay: runtime-dir
	bash scripts/build-moq-relay.sh
	@mkdir -p out
	@set -o pipefail; status=0; \
	$(CARGO) test -p edge-deliver --test relay -- --include-ignored 2>&1 | tee out/test-relay.log || status=$$?; \
	bash scripts/test-summary.sh out/test-relay.log; exit $$status

# The fault suite: real peers over network namespaces, veth pairs and `tc tbf` that the tests
# make themselves, so it needs root (CAP_NET_ADMIN); without it a test fails and says so. Runs the
# slow-viewer test (netns), the control-flood and connection-burst tests, the RTMP origin
# restart, and the QUIC Initial flood (1,000/s for 10 s at `edge-node serve` in its own process),
# then prints one table of their figures (scripts/fault-table.py) and fails when one is past its
# limit in scripts/fault-thresholds.txt. `make test` runs all but the netns test. About 3 minutes.
.PHONY: test-faults
test-faults: runtime-dir
	@mkdir -p out
	@set -o pipefail; status=0; \
	RUST_LOG=$${RUST_LOG:-warn} $(CARGO) test -p edge-deliver --test slow_viewer -- --include-ignored --nocapture 2>&1 | tee out/test-faults.log || status=$$?; \
	RUST_LOG=$${RUST_LOG:-error} $(CARGO) test -p edge-deliver --test routing -- --nocapture burst control_flood 2>&1 | tee -a out/test-faults.log || status=$$?; \
	RUST_LOG=$${RUST_LOG:-error} $(CARGO) test -p edge-node --test rtmp_upstream --test initial_flood -- --nocapture --test-threads 1 2>&1 | tee -a out/test-faults.log || status=$$?; \
	bash scripts/test-summary.sh out/test-faults.log; \
	python3 scripts/fault-table.py out/test-faults.log || status=$$?; exit $$status

# A long run: `edge-node serve` (release) with seven real viewers for SOAK_MINUTES (default 30)
# after a minute's warm-up: six `edge-node view` in three renderings (zones yintai-mall and
# default, default at 360p) and one PyPI moq-rs. Prints the node's RSS each minute, then per
# viewer the frames received and lost; fails unless RSS grew under 5% and no viewer lost a
# frame. `SOAK_MINUTES=2 make soak` checks that it works (see scripts/soak.py for settings).
.PHONY: soak
soak: runtime-dir
	$(CARGO) build --release --bin edge-node
	python3 scripts/soak.py

# Every fuzz target for FUZZ_RUNS executions (default 10 M) or FUZZ_TIME seconds each, then the
# corpora minimised. Needs the nightly toolchain and `cargo install cargo-fuzz`; FUZZ_ARGS=--node
# adds node_config, which links the whole node. Long: up to about an hour per slow target.
.PHONY: fuzz fuzz-replay
fuzz:
	bash scripts/fuzz.sh $(if $(FUZZ_TIME),--time $(FUZZ_TIME),--runs $(or $(FUZZ_RUNS),10000000)) --minimize $(FUZZ_ARGS)

# Every corpus file and crash reproducer through its fuzz target, on stable (part of `make test`).
# node_config's corpus replays through edge-node's own test, so this needs no second build of
# the node for the fuzz workspace.
fuzz-replay:
	$(CARGO) test --manifest-path fuzz/Cargo.toml --lib
	$(CARGO) test -p edge-node --test fuzz_corpus

# Latency benchmark at 720p30 and 1080p30 against the bare decode->encode floor.
bench: build
	$(CARGO) build --release --bin edge-bench
	./target/release/edge-node bench --resolution 1280x720 --fps 30 --duration $(BENCH_SECONDS) --json out/bench/bench-720p30.json
	./target/release/edge-node bench --resolution 1920x1080 --fps 30 --duration $(BENCH_SECONDS) --json out/bench/bench-1080p30.json

clean:
	$(CARGO) clean
	rm -rf out
