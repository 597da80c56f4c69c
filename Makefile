# Palisade: the commands a developer and CI use. CI calls `make test` (see .ci/run).
#
#   make setup           install the Debian packages the build needs (only those missing)
#   make build           release binary: target/release/palisade
#   make run             demo: a small streaming platform on 127.0.0.1:8081, Palisade on 127.0.0.1:8080
#   make demo-attack     a scripted abusive chat user against a running `make run`, step by step
#   make test            the whole test suite (nextest when installed, cargo test otherwise)
#   make bench           criterion benchmarks of the decision path and the policy engine
#   make check-policies  `palisade check` on every configuration under deploy/
#   make lint            rustfmt check and clippy with warnings as errors
#   make fuzz            cargo-fuzz targets, FUZZ_SECS each (default 30; needs nightly, installed if missing)
#   make soak            mixed load, reloads and a hot upgrade for SOAK_SECS (default 600)
#   make clean-run       delete the demo's run/ directory (telemetry, pid file, socket)
#   make bench-peers     side-by-side benchmark against nginx, HAProxy and stock Pingora
#                        (benches/peers/bench.py; about 10 minutes; not part of CI)
#   make bench-fleet     ban propagation across three instances and one nats-server on
#                        loopback (FLEET_BENCH_BANS bans, default 300; docs/fleet.md)

SHELL := /bin/bash

# rustup installs cargo here; a fresh login shell may not have it on PATH yet.
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Packages the build needs on Debian: cmake and a C compiler build vendored C libraries
# (zlib-ng, zstd, OpenSSL), perl drives OpenSSL's build, curl is for the demo and rustup,
# nats-server (with JetStream) is started by the telemetry tests (tests/nats.rs), slowhttptest
# drives the slow-client test (tests/slow_clients.rs), libmodsecurity3 and modsecurity-crs are
# the WAF's Core Rule Set tier (loaded at run time; tests/waf_crs.rs, policies/waf-crs.yaml),
# chromium and chromium-driver run the console's browser test (tests/console_browser.rs).
DEB_PACKAGES := cmake pkg-config libssl-dev build-essential perl curl nats-server slowhttptest libmodsecurity3 modsecurity-crs chromium chromium-driver

# Packages only `make bench-peers` needs (never CI): the peers, the load generators (wrk; h2load
# from nghttp2-client) and openssl for the benchmark's self-signed certificate.
PEER_BENCH_PACKAGES := nginx-light haproxy wrk nghttp2-client openssl

DEMO_CONFIG := deploy/demo/palisade.yaml
DEMO_ORIGIN_ADDR := 127.0.0.1:8081
RUN_DIR := run

FUZZ_SECS ?= 30
FUZZ_TARGETS := config policy matchers framing waf_decode waf_inspect
SOAK_SECS ?= 600

.PHONY: setup build run demo-attack test bench bench-peers bench-fleet check-policies lint clean-run fuzz soak

setup:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
		echo "setup: installing$$missing"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "setup: Debian packages present ($(DEB_PACKAGES))"; \
	fi
	@if ! command -v cargo >/dev/null 2>&1; then \
		echo "setup: cargo not found; installing the Rust toolchain with rustup (into ~/.cargo)"; \
		curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
			| sh -s -- -y --profile minimal --component rustfmt,clippy; \
	fi

build: setup
	cargo build --release

run: setup
	cargo build --release --bin palisade --example demo_origin
	@mkdir -p $(RUN_DIR)
	@echo
	@echo "Palisade demo: client -> Palisade 127.0.0.1:8080 -> demo streaming platform $(DEMO_ORIGIN_ADDR)"
	@echo
	@echo "Open http://127.0.0.1:8080/ in a browser: a stream page with a chat room (WebSocket /chat)."
	@echo "Sign in, chat, edit your profile; Palisade moderates what you say (deploy/demo/policy.yaml)."
	@echo
	@echo "Try these in another terminal:"
	@echo "  the scripted abusive chat user: evasions dropped, profile refused, strikes, probation, ban:"
	@echo "    make demo-attack"
	@echo "  allowed (200, from the origin, security headers added, Server removed):"
	@echo "    curl -i http://127.0.0.1:8080/api/stream"
	@echo "  blocked (403): a client on the default deny list, named by the trusted proxy 127.0.0.1:"
	@echo "    curl -i -H 'X-Forwarded-For: 203.0.113.9' http://127.0.0.1:8080/"
	@echo "  blocked (403): a probe for source control files:"
	@echo "    curl -i http://127.0.0.1:8080/.git/config"
	@echo "  throttled: 12 requests to /login; the first 10 get 200, then 429 with Retry-After:"
	@echo "    for i in \$$(seq 12); do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/login; done"
	@echo "  (each refusal is a strike against this client: 5 within a couple of minutes put it on"
	@echo "   probation, every request 429, and 10 ban it for 2 minutes; your browser is this client"
	@echo "   too, so restart make run to start afresh)"
	@echo "  metrics:   curl -s http://127.0.0.1:9100/metrics | grep ^palisade_"
	@echo "  telemetry: tail -f $(RUN_DIR)/telemetry.jsonl   (one JSON event per request)"
	@echo
	@echo "Press Ctrl-C to stop Palisade and the demo origin."
	@echo
	@./target/release/examples/demo_origin $(DEMO_ORIGIN_ADDR) & origin=$$!; pal=; \
	trap 'kill -TERM $$pal $$origin 2>/dev/null; wait 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM HUP; \
	for i in $$(seq 50); do \
		curl -sf -o /dev/null http://$(DEMO_ORIGIN_ADDR)/healthz && break; \
		kill -0 $$origin 2>/dev/null || { echo "demo origin did not start (is $(DEMO_ORIGIN_ADDR) in use?)"; exit 1; }; \
		sleep 0.1; \
	done; \
	./target/release/palisade run -c $(DEMO_CONFIG) & pal=$$!; \
	wait $$pal

# Needs `make run` running in another terminal; exits 1 when a step did not go as expected.
demo-attack: setup
	cargo build --release --example demo_attack
	@./target/release/examples/demo_attack --proxy 127.0.0.1:8080 --origin $(DEMO_ORIGIN_ADDR) \
		--metrics 127.0.0.1:9100 --telemetry $(RUN_DIR)/telemetry.jsonl

test: setup
	@if cargo nextest --version >/dev/null 2>&1; then \
		echo "cargo nextest run --all-targets --no-fail-fast"; cargo nextest run --all-targets --no-fail-fast; \
	else \
		echo "cargo test --all-targets --no-fail-fast"; cargo test --all-targets --no-fail-fast; \
	fi

bench: setup
	cargo bench --bench request_filter --bench policy

# ARGS passes options to the script, e.g. ARGS="--rounds 5 --duration 6" (see its --help).
bench-peers: setup
	PEER_BENCH_PACKAGES="$(PEER_BENCH_PACKAGES)" python3 benches/peers/bench.py $(ARGS)

# Three palisade processes (debug build, as the tests run them) and one nats-server on
# 127.0.0.1; bans addresses at random instances and times each until the other two refuse it.
# Ends with one line: `propagation p50 X ms p99 Y ms over N bans`.
FLEET_BENCH_BANS ?= 300
bench-fleet: setup
	@rm -f target/bench-fleet.txt
	FLEET_BENCH_BANS=$(FLEET_BENCH_BANS) FLEET_BENCH_OUT=$(CURDIR)/target/bench-fleet.txt \
		cargo test --test fleet -- --ignored --exact bench_propagation
	@cat target/bench-fleet.txt

# deploy/palisade.yaml names certificates under /etc/palisade/tls/ that do not exist in a
# checkout: `palisade check` reports them as missing, and only "missing certificate file"
# reports are tolerated here. Any other error, including a malformed certificate, fails.
check-policies: setup
	cargo build --bin palisade
	@status=0; \
	for f in $$(find deploy -name '*.yaml' ! -name 'policy*.yaml' | sort); do \
		out=$$(./target/debug/palisade check -c "$$f" 2>&1); rc=$$?; \
		if [ $$rc -eq 0 ]; then echo "$$f: $$out"; continue; fi; \
		other=$$(printf '%s\n' "$$out" \
			| grep -v -E 'field `listeners\[[0-9]+\]\.tls\.certificates\[[0-9]+\](\.(cert|key))?`: cannot read .*No such file or directory' \
			| grep -v -E '^configuration has [0-9]+ error\(s\)$$' || true); \
		if [ -z "$$other" ]; then \
			echo "$$f: ok apart from certificate files absent on this machine:"; \
			printf '%s\n' "$$out" | sed 's/^/  /'; \
		else \
			echo "$$f: FAILED"; printf '%s\n' "$$out" | sed 's/^/  /'; status=1; \
		fi; \
	done; \
	exit $$status

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Coverage-guided fuzzing (libFuzzer via cargo-fuzz, nightly only). Each target starts from
# fuzz/seeds/TARGET and keeps what it learns in fuzz/corpus/TARGET; a crash stops the run and
# leaves its input in fuzz/artifacts/TARGET.
fuzz: setup
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECS)s"; \
		cargo +nightly fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
			-max_total_time=$(FUZZ_SECS) -rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

# Ten minutes (SOAK_SECS) of mixed load with policy reloads and a hot upgrade; see tests/soak.rs.
soak: setup
	SOAK_SECS=$(SOAK_SECS) cargo test --test soak -- --ignored --nocapture

clean-run:
	rm -rf $(RUN_DIR)
