# Two commands for a newcomer: `make up` runs Tidegate, `make test` passes the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What `make up` runs behind the gateway: vllm (real vLLM servers, about a minute to start)
# or sim (simulated workers, instant).
ENGINE ?= vllm
# Extras installed into the venv: `cpu` is vLLM's CPU build; on a CUDA machine use
# `make EXTRAS=dev,gpu ...`.
EXTRAS ?= dev,cpu
# Pulled in by vLLM's CPU build but unused by it: PyPI's torchvision breaks transformers'
# imports, and triton is 1 GB of GPU compiler.
CPU_UNUSED := torchvision torchaudio torchcodec triton

.PHONY: up test test-fast lint bench clean

$(BIN)/tidegate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
ifneq (,$(findstring cpu,$(EXTRAS)))
	$(BIN)/python -m pip uninstall -q -y $(CPU_UNUSED)
endif
	touch $@

up: $(BIN)/tidegate  ## gateway + 2 workers on http://127.0.0.1:8000 (ENGINE=sim: simulated)
	$(BIN)/tidegate up --engine $(ENGINE)

lint: $(BIN)/tidegate
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

tools: $(BIN)/tidegate  ## helm 3.18 and kubectl into .tools/bin, for the chart tests
	bash scripts/fetch-helm.sh
.PHONY: tools

test: lint tools  ## everything CI runs: lint, types, the whole test suite (real vLLM included)
	$(BIN)/pytest || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: a broken suite" >&2; exit $$rc; }

test-fast: $(BIN)/tidegate tools  ## skip the slow end-to-end tests
	$(BIN)/pytest -m "not slow"

bench: $(BIN)/tidegate
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info .run
