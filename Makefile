# The README's two commands. Each creates .venv if missing and installs the project
# into it (offline but for the package registries) before doing its job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test stop clean

demo: $(STAMP)
	$(PY) -m sim run

test: $(STAMP)
	$(PY) -m pytest

stop: $(STAMP)
	$(PY) -m sim stop

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) outputs .pytest_cache
