# Developer entry points for the newsapi server.
#
#   make run      start PostgreSQL if needed, then the server on LISTEN_ADDR
#   make test     lint, then the whole test suite against a local PostgreSQL
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

.PHONY: help prepare run migrate test lint fmt clean-test-dbs

help:
	@echo "make prepare         create .env if missing, make sure PostgreSQL runs and the database exists"
	@echo "make run             prepare, then run the server (release build)"
	@echo "make migrate         prepare, then apply pending database migrations"
	@echo "make test            prepare, lint, then cargo test --all-targets"
	@echo "make lint            cargo fmt --check and cargo clippy -D warnings"
	@echo "make fmt             format the code"
	@echo "make clean-test-dbs  drop leftover newsapi_test_* databases"

prepare:
	@bash scripts/ensure-env.sh
	@bash scripts/ensure-postgres.sh

run: prepare
	$(CARGO) run --release --bin newsapi

migrate: prepare
	$(CARGO) run --release --bin newsapi -- migrate

# The tests create (and drop) their own newsapi_test_* databases through
# TEST_DATABASE_URL, the maintenance database of DATABASE_URL's server.
# Keep `cargo test` last so the output ends with cargo's summary lines.
test: prepare lint
	@export TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(bash scripts/database-url.sh --server)}"; \
	echo "+ TEST_DATABASE_URL=$${TEST_DATABASE_URL%%://*}://…@$${TEST_DATABASE_URL##*@} $(CARGO) test --all-targets"; \
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean-test-dbs:
	@bash scripts/clean-test-dbs.sh
