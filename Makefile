# The README's two commands (`make demo`, `make test`) and their companions. Each
# creates .venv if missing and installs the project into it (offline but for the
# package registries) before doing its job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint stop tracking clean

demo: $(STAMP)
	$(PY) -m sim run

# Everything: unit tests and end-to-end runs (real SuperLinks, Ray, a TLS cluster).
test: $(STAMP)
	$(PY) -m pytest

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
