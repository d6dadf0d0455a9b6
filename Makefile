# The README's two commands (`make demo`, `make test`) and their companions. Each
# creates .venv if missing and installs the project into it (offline but for the
# package registries) before doing its job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-fast lint stop tracking clean

demo: $(STAMP)
	$(PY) -m sim run

# Unit tests and end-to-end runs (real SuperLinks, Ray), but the longest (`slow`) ones.
test: $(STAMP)
	$(PY) -m pytest -m "not slow"

# The longest end-to-end runs (the TLS cluster, logical clients against one per node, a resumed run); CI runs them.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Unit tests only: seconds-long checks of the math, config, data and plumbing.
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

stop: $(STAMP)
	$(PY) -m sim stop

# The optional experiment-tracking packages (TensorBoard, MLflow), for a .venv made otherwise.
tracking: $(STAMP)
	$(PY) -m pip install --quiet -e ".[tracking]"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,tracking]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) outputs mlflow.db mlartifacts .pytest_cache
