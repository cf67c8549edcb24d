# `make demo` and `make test` each create the virtual environments they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The predictors under test run in their own environments, as they would in their own
# containers: MLServer (v2 REST and gRPC) and KServe's Python model server (v1); so do
# moto's S3 server, locust and pip-audit.
MLSERVER_VENV := .venv-mlserver
VLLM_VENV := .venv-vllm
KSERVE_VENV := .venv-kserve
MOTO_VENV := .venv-moto
AUDIT_VENV := .venv-audit
LOCUST_VENV := .venv-locust
PYSPY_VENV := .venv-pyspy

# docs/settings.md is generated from explainer/settings.py (tests/test_docs.py checks it).
.PHONY: demo test lint typecheck audit unit soak clean docs bench bench-defaults bench-startup bench-accuracy bench-batch bench-background bench-unseen bench-mixed bench-texts bench-prompts profile

$(VENV)/.runtime: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

# Each tool the tests start gets its own environment, .venv-<tool>, installed from
# requirements/<tool>.txt under requirements/<tool>-constraints.txt.
.venv-%/.installed: requirements/%.txt requirements/%-constraints.txt
	test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install -q -c requirements/$*-constraints.txt -r requirements/$*.txt
	touch $@

# vLLM's wheels pull torchvision, torchaudio and torchcodec, which break transformers'
# import beside the CPU torch: they go.
.venv-vllm/.installed: requirements/vllm.txt requirements/vllm-constraints.txt
	test -x .venv-vllm/bin/python || $(PYTHON) -m venv .venv-vllm
	.venv-vllm/bin/pip install -q -c requirements/vllm-constraints.txt -r requirements/vllm.txt
	.venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# Known vulnerabilities in any pinned environment fail; unreachable lookups are reported.
audit: $(AUDIT_VENV)/.installed
	$(PYTHON) tools/audit.py $(AUDIT_VENV)/bin/pip-audit

demo: $(VENV)/.runtime
	$(BIN)/explainer demo

docs: $(VENV)/.test
	$(BIN)/python -m tools.settings_doc

lint: $(VENV)/.test
	$(BIN)/ruff check explainer explainers tests bench tools

typecheck: $(VENV)/.test
	$(BIN)/mypy

TEST_SERVERS := $(MLSERVER_VENV)/.installed $(KSERVE_VENV)/.installed $(MOTO_VENV)/.installed $(LOCUST_VENV)/.installed $(VLLM_VENV)/.installed
TEST_ENV := VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver MOTO_BIN=$(CURDIR)/$(MOTO_VENV)/bin/moto_server LOCUST_BIN=$(CURDIR)/$(LOCUST_VENV)/bin/locust

unit: $(VENV)/.test $(TEST_SERVERS)
	$(TEST_ENV) $(BIN)/pytest

# 32 clients for 60 s (make test runs the same for 10 s), and SIGTERM under that load.
soak: $(VENV)/.test $(TEST_SERVERS)
	$(TEST_ENV) SOAK_SECONDS=60 $(BIN)/pytest -s tests/explainer/test_load.py

test: lint typecheck audit unit

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) $(VLLM_VENV) $(KSERVE_VENV) $(MOTO_VENV) $(AUDIT_VENV) $(LOCUST_VENV) $(PYSPY_VENV) .pytest_cache .mypy_cache .ruff_cache

# This project against lime + shap and against the predictor alone, in one run (bench/perf).
bench: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/python -m bench.perf

# The last part of `make bench` alone: speed at the defaults against shap and lime as written.
bench-defaults: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/python -m bench.perf.defaults

# What mixed-type rows (text, booleans, integers) cost the explainer against numeric ones.
bench-mixed: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/python -m bench.perf.mixed

bench-startup: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/python -m bench.startup

bench-accuracy: $(VENV)/.test
	$(BIN)/python -m bench.accuracy

# Accuracy at the defaults on models the estimator was not designed on (issue 15's harness).
bench-unseen: $(VENV)/.test
	$(BIN)/python -m bench.accuracy.unseen

# Long texts: SHAP's error per predictor row, against shap's KernelExplainer (issue 17).
bench-texts: $(VENV)/.test $(MLSERVER_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver $(BIN)/python -m bench.accuracy.texts

# Prompts to a generative model: calls and latency per explanation, vLLM on CPU (issue 18).
bench-prompts: $(VENV)/.test $(VLLM_VENV)/.installed
	VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python $(BIN)/python -m bench.perf.prompts

bench-batch: $(VENV)/.test
	$(BIN)/python -m bench.batch

bench-background: $(VENV)/.test $(MOTO_VENV)/.installed
	MOTO_BIN=$(CURDIR)/$(MOTO_VENV)/bin/moto_server $(BIN)/python -m bench.background

# Where a served explainer's time goes (py-spy over 61 requests): bench/results/profile.md.
profile: $(VENV)/.test $(MLSERVER_VENV)/.installed $(PYSPY_VENV)/.installed
	MLSERVER_BIN=$(CURDIR)/$(MLSERVER_VENV)/bin/mlserver PYSPY_BIN=$(CURDIR)/$(PYSPY_VENV)/bin/py-spy $(BIN)/python -m bench.profile
