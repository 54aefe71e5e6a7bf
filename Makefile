# One virtual environment in .venv; every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: migrate, load the demo data and serve on http://127.0.0.1:8000 (scheduler in-process)
run: $(STAMP)
	$(BIN)/callcenter db upgrade
	$(BIN)/callcenter demo load
	$(BIN)/callcenter serve --host 127.0.0.1 --port 8000

## test: lint, type-check and run the whole test suite
test: lint
	$(BIN)/pytest -n auto --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/callcenter db upgrade

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
