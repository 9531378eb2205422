# Two commands for a newcomer: `make up` runs Tidegate, `make test` passes the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test test-fast lint bench clean

$(BIN)/tidegate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

up: $(BIN)/tidegate  ## gateway + 2 simulated workers on http://127.0.0.1:8000
	$(BIN)/tidegate up

lint: $(BIN)/tidegate
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint  ## everything CI runs: lint, types, the whole test suite
	$(BIN)/pytest || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: a broken suite" >&2; exit $$rc; }

test-fast: $(BIN)/tidegate  ## skip the slow end-to-end tests
	$(BIN)/pytest -m "not slow"

bench: $(BIN)/tidegate
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
