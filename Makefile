# Two commands for a new user: `make run` (today's digest) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint preview clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up, then run today's digest from the bundled samples into var/outbox/.
run: $(STAMP)
	$(BIN)/digest subscribers import config/samples/subscribers.csv
	$(BIN)/digest run

## Set up, then lint, type-check and run the whole test suite. tests/services.py installs
## Debian's chromium, postgresql and dovecot-imapd when missing and runs pytest beside a
## throwaway PostgreSQL cluster, removed afterwards (the bounce tests start their own Dovecot).
test: $(STAMP) lint
	$(BIN)/python -m tests.services $(BIN)/pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

preview: $(STAMP)
	$(BIN)/digest preview

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
