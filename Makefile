# The two commands: `make up` runs StartupMonkey, `make test` proves it works.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help deps test lint unit up build release bench clean-state

help:
	@echo "make up    - install what is missing, build, start NATS/Redis if needed and the five services"
	@echo "make test  - install what is missing, then fmt, clippy and every test against real servers"
	@echo "make bench - measurements on real servers, written to bench/results/"

deps:
	@scripts/install-deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# nextest runs each test in its own process (servers started per test); cargo test otherwise.
unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --locked --no-fail-fast; \
	fi

test: deps lint unit
	@echo "make test: all checks passed"

build:
	$(CARGO) build --workspace --locked

release:
	$(CARGO) build --release --locked --bins

# Measurements, not pass/fail: writes bench/results/*.json and prints a markdown table.
bench: deps
	$(CARGO) bench --locked -p collector --bench collector
	$(CARGO) bench --locked -p system-tests --bench s1
	$(CARGO) bench --locked -p executor --bench safety

up: deps release
	@scripts/up.sh

# Removes local state written by `make up` (keys, logs, NATS/Redis data); asks first.
clean-state:
	@read -p "delete .startupmonkey/ (including the connection-string key)? [y/N] " a && [ "$$a" = y ] && rm -rf .startupmonkey
