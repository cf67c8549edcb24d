# `make demo` and `make test` each create the virtual environments they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The predictor under test runs in its own environment, as it would in its own container.
MLSERVER_VENV := .venv-mlserver

.PHONY: demo test lint typecheck unit clean bench-latency

$(VENV)/.runtime: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

$(MLSERVER_VENV)/.installed: requirements/mlserver.txt requirements/mlserver-constraints.txt
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install -q -c requirements/mlserver-constraints.txt -r requirements/mlserver.txt
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/explainer demo

lint: $(VENV)/.test
	$(BIN)/ruff check explainer explainers tests bench

typecheck: $(VENV)/.test
	$(BIN)/mypy

unit: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .pytest_cache .mypy_cache .ruff_cache

bench-latency: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/python -m bench.latency
