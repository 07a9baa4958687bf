# Thin wrappers around cargo; see README.md.
CARGO ?= cargo
# Where cargo puts the binary: $CARGO_TARGET_DIR if set (as cargo does), else ./target.
BIN := $(or $(CARGO_TARGET_DIR),target)/release/connperf
RUN_SECS ?= 5s

.PHONY: build run plot-demo test lint fmt bench soak check smoke docker clean

build:
	$(CARGO) build --release

# The main job on loopback: an echo server on a free port, a paced client against it, the
# server's final counters. Everything stops by itself. The server runs in table mode, so its
# address is on its `Listening at ADDR (...)` line (with --jsonlines it would be the "addr" of
# its {"kind":"listening",...} object).
run: build
	@set -e; out=$$(mktemp); \
	$(BIN) serve -l 127.0.0.1:0 --workers 1 >"$$out" & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; rm -f "$$out"' EXIT; \
	for i in $$(seq 100); do grep -q 'Listening at' "$$out" && break; sleep 0.05; done; \
	addr=$$(awk '/^Listening at / {print $$3; exit}' "$$out"); \
	test -n "$$addr" || { echo "no 'Listening at' line from connperf serve" >&2; exit 1; }; \
	echo "== connperf connect -c 10 -r 100 -d $(RUN_SECS) -i 1s $$addr"; \
	$(BIN) connect -c 10 -r 100 -d $(RUN_SECS) -i 1s "$$addr"; \
	kill -TERM $$pid; wait $$pid || true; \
	echo "== server counters"; grep '^server total' "$$out"

# docs/plot-demo.svg from two short loopback runs against one echo server on a free port
# (found as in `run`): PLOT_SECS of `connect -c 10 -r 1000 -i 500ms --hdr-log` (the latency
# timeline with throughput and errors per window, and the percentile spectrum), then a capacity
# sweep `--sweep 20k:200k:20k --sweep-step 1s --slo p99=1ms` in JSON Lines (latency vs achieved
# throughput, the SLO line and the knee). Both are drawn into one SVG by `connperf plot`. The
# server is stopped by its PID and the temp dir removed; everything stops by itself. A sweep
# without a knee exits 1; the picture is still drawn.
PLOT_SECS ?= 10s
plot-demo: build
	@set -e; tmp=$$(mktemp -d); \
	$(BIN) serve -l 127.0.0.1:0 --workers 1 >"$$tmp/serve.out" & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; rm -rf "$$tmp"' EXIT; \
	for i in $$(seq 100); do grep -q 'Listening at' "$$tmp/serve.out" && break; sleep 0.05; done; \
	addr=$$(awk '/^Listening at / {print $$3; exit}' "$$tmp/serve.out"); \
	test -n "$$addr" || { echo "no 'Listening at' line from connperf serve" >&2; exit 1; }; \
	echo "== connperf connect -c 10 -r 1000 -d $(PLOT_SECS) -i 500ms --hdr-log paced.hlog $$addr"; \
	$(BIN) connect -c 10 -r 1000 -d $(PLOT_SECS) -i 500ms --label run=plot-demo \
		--hdr-log "$$tmp/paced.hlog" --show-only-results "$$addr"; \
	echo "== connperf connect -c 10 --sweep 20k:200k:20k --sweep-step 1s --slo p99=1ms --jsonlines $$addr"; \
	$(BIN) connect -c 10 --sweep 20k:200k:20k --sweep-step 1s --slo p99=1ms --label run=plot-demo \
		--jsonlines "$$addr" >"$$tmp/sweep.jsonl" || true; \
	tail -n 1 "$$tmp/sweep.jsonl"; \
	kill -TERM $$pid; wait $$pid || true; \
	mkdir -p docs; \
	$(BIN) plot "$$tmp/paced.hlog" "$$tmp/sweep.jsonl" -o docs/plot-demo.svg; \
	echo "== wrote docs/plot-demo.svg"

test:
	$(CARGO) test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

# Loopback benchmarks against sockperf (apt-get install sockperf). One scenario:
# make bench SCENARIO=rr1
bench:
	$(CARGO) bench --bench loopback -- $(SCENARIO)

# 10 minutes at 20k requests/s over 1,000 connections through a lossy network-lab path
# (root; SOAK_SECS=60 for a short run). Not part of `make test`.
soak:
	$(CARGO) bench --bench soak

check: lint test
	$(CARGO) bench --no-run

smoke: build
	$(BIN) connect --demo -d 2s -i 1s

docker:
	docker build -t connperf .

clean:
	$(CARGO) clean
