# The README's first two commands: `make demo` and `make test`. Both create/reuse .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.babyvlm-installed
DEMO_DIR ?= demo_out
PYTEST_ARGS ?=
# one pytest worker per core (pytest-xdist): the suite is CPU-bound; PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= 2

.PHONY: setup demo test test-all lint bench clean lmms-venv test-lmms

setup: $(STAMP)

# torch is pinned to the CPU wheel first so nothing later pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,triton]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/babyvlm run demo --work-dir $(DEMO_DIR)

# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" -n $(PYTEST_WORKERS) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/loader.py
	$(PY) benchmarks/extraction.py

# A separate venv with lmms-eval 0.7.3 from PyPI beside the CPU torch, for the lmms-eval interop test.
# Constraints (docs/evaluation.md): torch stays the CPU wheel; filelock<4 (lmms-eval imports filelock._api);
# PyPI's torchvision is CUDA-linked and breaks transformers beside the CPU torch, so it is removed.
# Rebuilt when pyproject.toml changes (babyvlm's entry points are installed into it, editable).
LMMS_VENV := .venv-lmms
LMMS_STAMP := $(LMMS_VENV)/.babyvlm-installed
lmms-venv: $(LMMS_STAMP)

$(LMMS_STAMP): pyproject.toml
	test -x $(LMMS_VENV)/bin/python || $(PYTHON) -m venv $(LMMS_VENV)
	printf 'torch==2.13.0\nfilelock<4\n' > $(LMMS_VENV)/constraints.txt
	$(LMMS_VENV)/bin/pip install -q -c $(LMMS_VENV)/constraints.txt torch==2.13.0 'lmms-eval==0.7.3' pytest
	$(LMMS_VENV)/bin/pip install -q -c $(LMMS_VENV)/constraints.txt -e '.[lmms,dev]'
	$(LMMS_VENV)/bin/pip uninstall -y -q torchvision
	touch $(LMMS_STAMP)

# The lmms-eval interop tests inside .venv-lmms, the real lmms-eval CLI included (CI runs this).
test-lmms: $(LMMS_STAMP)
	$(LMMS_VENV)/bin/python -m pytest -q -m "" tests/test_eval_lmms.py $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
