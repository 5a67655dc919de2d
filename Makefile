# Backline: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test install lint format unit integration e2e property bench postgres clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,kafka,stripe,chain]"
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## Run the service on the embedded default (SQLite under ./var, 127.0.0.1:8000).
run: install
	$(BIN)/backline serve

## Install everything, start PostgreSQL if needed, lint, and run the whole suite.
test: install postgres lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check backline tests bench
	$(BIN)/ruff format --check backline tests bench
	$(BIN)/mypy backline
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix backline tests bench
	$(BIN)/ruff format backline tests bench

unit: install
	$(BIN)/python -m pytest -q tests/unit tests/property
integration: install postgres
	$(BIN)/python -m pytest -q tests/integration
e2e: install
	$(BIN)/python -m pytest -q tests/e2e

## Make sure a PostgreSQL server answers on 127.0.0.1:5432 (installs/starts one if not).
postgres:
	@bash scripts/ensure-postgres.sh

bench: install postgres
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
