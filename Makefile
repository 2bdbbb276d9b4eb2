# finsync — the two commands are `make demo` and `make test`; everything else they need is here.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST := $(BIN)/python -m pytest

.PHONY: install browser up down status lint schemas-check test test-unit test-integration test-e2e demo bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v java >/dev/null && command -v mvn >/dev/null || deploy/local/install-system-packages.sh
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium, for the console's browser tests (installed only when missing).
browser:
	@deploy/local/install-browser.sh

# PROMETHEUS=1 also starts Prometheus (Debian's, installed when missing), scraping the services.
up: install
	$(BIN)/finsync stack up$(if $(filter 1 yes true on,$(PROMETHEUS)), --prometheus)

down:
	@test -x $(BIN)/finsync && $(BIN)/finsync stack down || true

status: install
	$(BIN)/finsync stack status

lint: install
	$(BIN)/ruff check libs services tests
	$(BIN)/ruff format --check libs services tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Registers schemas/*.avsc with BACKWARD compatibility; fails when a change would break a
# registered version.
schemas-check: up
	$(BIN)/finsync schemas

test-unit: install
	$(PYTEST) tests/unit -q

test-integration: up
	$(PYTEST) tests/integration -q

test-e2e: up browser
	$(PYTEST) tests/e2e -q

test: lint test-unit schemas-check browser
	$(PYTEST) tests/integration tests/e2e -q --durations=15

demo: up
	$(BIN)/python -m finsync.scenario.demo

# Figures go to artifacts/bench/bench-results.json (FINSYNC_BENCH_OUT), drawn in
# bench-results.png at the end.
bench: up
	$(BIN)/python -m finsync.bench.invoice_poster
	$(BIN)/python -m finsync.bench.peers
	$(BIN)/python -m finsync.bench.analytics
	$(BIN)/python -m finsync.bench.dead_letters
	$(BIN)/python -m finsync.bench.dlq_replay
	$(BIN)/python -m finsync.bench.services
	$(BIN)/python -m finsync.bench.stack_up
	$(BIN)/python -m finsync.bench.chart

# The order-to-cash scenario at FINSYNC_CHAOS_EVENTS (100000) events while services, Kafka,
# PostgreSQL and the registry are killed and brought back; fails unless the books are right.
chaos: up
	$(BIN)/python -m finsync.scenario.chaos

clean: down
	rm -rf .finsync
