# llmlab: `make quickstart` runs the main job, `make test` runs the test suite.
# Both create a virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel by default. GPU users: make TORCH_SPEC="torch" (or install torch into .venv
# from pytorch.org first; a torch that is already installed is kept).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmlab-installed

.PHONY: quickstart test test-fast install bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/llmlab quickstart

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow"

bench: $(STAMP)
	$(PY) bench/model_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .llmlab-cache
