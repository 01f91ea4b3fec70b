# The two commands: `make up` runs StartupMonkey, `make test` proves it works.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help deps test lint unit dashboard dashboard-build openapi up build release bench clean-state

help:
	@echo "make up    - install what is missing, build, start NATS/Redis if needed and the five services"
	@echo "make test  - install what is missing, then fmt, clippy, the dashboard's checks and every test against real servers and Chromium"
	@echo "make bench - measurements on real servers, written to bench/results/"

deps:
	@scripts/install-deps.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	scripts/check-compose.sh
	scripts/check-k8s.sh

# nextest runs each test in its own process (servers started per test); cargo test otherwise.
unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --locked --no-fail-fast; \
	fi

# The dashboard: dependencies (npm install, not npm ci: see docs), type check, lint, unit tests
# and the production build the browser test (in `unit`) serves.
dashboard:
	cd dashboard && npm install --no-audit --no-fund --loglevel=error
	cd dashboard && npm run --silent typecheck
	cd dashboard && npm run --silent lint
	cd dashboard && npm run --silent test
	cd dashboard && NEXT_TELEMETRY_DISABLED=1 npm run --silent build

test: deps lint dashboard unit
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
	$(CARGO) build --release --locked --bins
	$(CARGO) bench --locked -p system-tests --bench load
	$(CARGO) bench --locked -p system-tests --bench advisor
	bench/summarise.py

up: deps release dashboard-build
	@scripts/up.sh

# The gateway's OpenAPI document, which the dashboard's types are generated from; a gateway test
# fails while the committed copy differs from what the code makes.
openapi:
	$(CARGO) run --quiet --locked -p gateway -- openapi > dashboard/lib/openapi.json

dashboard-build:
	cd dashboard && npm install --no-audit --no-fund --loglevel=error
	cd dashboard && NEXT_TELEMETRY_DISABLED=1 npm run --silent build

# Removes local state written by `make up` (keys, logs, NATS/Redis data); asks first.
clean-state:
	@read -p "delete .startupmonkey/ (including the connection-string key)? [y/N] " a && [ "$$a" = y ] && rm -rf .startupmonkey
