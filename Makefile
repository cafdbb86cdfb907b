# Developer entry points for the newsapi server.
#
#   make run      start PostgreSQL if needed, then the server on LISTEN_ADDR
#   make test     lint, then the whole test suite against a local PostgreSQL,
#                 then the outside-in suites (spec lint, contract, clients, browser, prometheus,
#                 jwks, cluster, failover)
#   make lint     rustfmt check + clippy (warnings are errors)
#
# Settings come from .env (created on first use by scripts/ensure-env.sh;
# see .env.example). Variables in the environment win over .env.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# Targets run their prerequisites strictly left to right (prepare before lint
# before the tests), even under `make -j`.
.NOTPARALLEL:

# rustup installs cargo into ~/.cargo/bin, which non-login shells may not have.
ifeq ($(shell command -v cargo 2>/dev/null),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

CARGO ?= cargo

.PHONY: help prepare run migrate test lint fmt clean-test-dbs suites spec-lint contract clients \
	clients-python clients-typescript browser prometheus jwks cluster-test failover bench bench-compare bench-cluster bench-scale soak

help:
	@echo "make prepare         create .env if missing, make sure PostgreSQL runs and the database exists"
	@echo "make run             prepare, then run the server (release build)"
	@echo "make migrate         prepare, then apply pending database migrations"
	@echo "make test            prepare, lint, cargo test --all-targets, then make suites"
	@echo "make lint            cargo fmt --check and cargo clippy -D warnings"
	@echo "make fmt             format the code"
	@echo "make clean-test-dbs  drop leftover newsapi_test_* and newsapi_e2e_* databases"
	@echo "make suites          the outside-in suites below, one after the other (part of make test)"
	@echo "make spec-lint       Redocly CLI lints openapi.yaml (tests/spec-lint)"
	@echo "make contract        Schemathesis contract tests against a live server (tests/contract)"
	@echo "make clients         generated Python and TypeScript clients against a live server (tests/clients)"
	@echo "make browser         the explorer and Redoc in headless Chromium (tests/browser)"
	@echo "make prometheus      Debian's Prometheus scrapes a live server and is queried (tests/prometheus)"
	@echo "make jwks            PyJWT verifies EdDSA tokens with /.well-known/jwks.json across a key rotation (tests/jwks)"
	@echo "make cluster-test    three release-build replicas on one database behind Debian's nginx, with the rolling restart, and one through PgBouncer (tests/cluster), then the failover (tests/failover)"
	@echo "make failover        pg_auto_failover primary + sync standby, the primary killed under write load (tests/failover)"
	@echo "make bench           release build, seeded benchmark database, every scenario once (BENCHMARKS.md)"
	@echo "make bench-compare   the same scenarios against the LoopBack and PocketBase anchors and pgbench, 3 rounds, medians"
	@echo "make bench-cluster   S1 and S2 through nginx to 1, 2, 3 replicas, direct, and with a read replica (~11 min)"
	@echo "make bench-scale     S1, S2 (first and a deep page), S3 and counts at 10^4, 10^5, 10^6 news: the cost curve and its plot"
	@echo "make soak            release build, mixed load for SOAK_SECS (300) with the database cut off halfway for SOAK_CUT_SECS (10)"

prepare:
	@bash scripts/ensure-env.sh
	@bash scripts/ensure-postgres.sh

run: prepare
	$(CARGO) run --release --bin newsapi

migrate: prepare
	$(CARGO) run --release --bin newsapi -- migrate

# The tests create (and drop) their own newsapi_test_* databases through
# TEST_DATABASE_URL, the maintenance database of DATABASE_URL's server.
# Then the outside-in suites, each against a server of its own on a fresh newsapi_e2e_* database;
# their output ends with one line per suite and the total (`suites: N passed, M failed`).
test: prepare lint
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(bash scripts/database-url.sh --server)}"; \
	echo "+ TEST_DATABASE_URL=$${TEST_DATABASE_URL%%://*}://…@$${TEST_DATABASE_URL##*@} $(CARGO) test --all-targets"; \
	$(CARGO) test --all-targets
	@# The tests whose answer depends on the hashing threads getting the CPU (a sign-in within 2 s
	@# under a flood), and the panic test, whose log subscriber is its own thread's, are #[ignore]d
	@# above and run here one at a time, with nothing else competing.
	$(CARGO) test --test api -- --ignored --test-threads=1
	@bash tests/run-suites.sh

# The outside-in suites. Each installs its own tools (a venv under target/venv, `npm ci` from a
# committed lockfile, Debian's chromium and prometheus) and runs scripts/with-test-server.sh.
suites: prepare
	@bash tests/run-suites.sh

spec-lint:
	@bash tests/run-suites.sh spec-lint

contract: prepare
	@bash tests/run-suites.sh contract

clients: prepare
	@bash tests/run-suites.sh clients-python clients-typescript

clients-python: prepare
	@bash tests/run-suites.sh clients-python

clients-typescript: prepare
	@bash tests/run-suites.sh clients-typescript

browser: prepare
	@bash tests/run-suites.sh browser

prometheus: prepare
	@bash tests/run-suites.sh prometheus

jwks: prepare
	@bash tests/run-suites.sh jwks

# Three replicas behind nginx, one more through PgBouncer (tests/cluster), then the failover of a
# pg_auto_failover pair under write load (tests/failover); `make test` runs both too.
cluster-test: prepare
	@bash tests/run-suites.sh cluster failover

# Its own PostgreSQL formation (a monitor and two nodes on free ports in a temporary directory), so
# no `prepare`: it never uses the PostgreSQL of DATABASE_URL.
failover:
	@bash tests/run-suites.sh failover

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	@# The soak harness is no test of `cargo test` (test = false), so --all-targets leaves it out.
	$(CARGO) clippy --test soak -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-test-dbs:
	@bash scripts/clean-test-dbs.sh

# Benchmarks (see BENCHMARKS.md). Both build the release binary, make a fresh benchmark database
# (newsapi_bench, seeded with 100 000 news), start their own servers on 127.0.0.1:3180-3184 and
# stop them at the end (bench-compare: PocketBase on 3186-3187 too). Results:
# target/bench/results.json and compare.json.
bench:
	@bash scripts/bench/bench.sh

bench-compare:
	@bash scripts/bench/compare.sh

# S1 and S2 through Debian's nginx (deploy/nginx.conf) to 1, 2 and 3 replicas, straight to one, and
# to one whose DATABASE_READ_URL is a streaming standby; on a PostgreSQL primary and standby of its
# own (free ports, a temporary directory, removed on exit), never DATABASE_URL's. Not part of
# make test. Results: target/bench/cluster/results.{json,md}; BENCHMARKS.md, "Replicas and read
# replicas".
bench-cluster:
	@bash scripts/bench/cluster.sh

# The cost curve (BENCHMARKS.md, "Cost curve"): one database and one release server per size of
# SCALE_SIZES (10000,100000,1000000), every scenario at every size; REUSE_SEED=1 reuses the seeded
# databases. Results: target/bench/scale/results.{json,md} and scale.png (SCALE_PLOT_OUT copies it).
bench-scale:
	@bash scripts/bench/scale.sh

# A bounded mixed load (reads, idempotent creates, sign-ins, refreshes) against the release build,
# with the database cut off halfway (tests/soak/main.rs); prints statuses, p99 and RSS per minute and
# rows written against creates acknowledged, and fails on any undocumented status or a lost or
# doubled write. SOAK_SECS (300), SOAK_CUT_SECS (10), SOAK_READERS (8), SOAK_WRITERS (2).
soak: prepare
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(bash scripts/database-url.sh --server)}"; \
	$(CARGO) test --release --test soak
