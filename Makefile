# The two commands: `make test` and `make demo`; each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The offline data files next to this checkout (MNIST IDX), where present; an existing setting wins.
WORKSPACE_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(WORKSPACE_DATA)),)
export PYRO_FLOWZOO_DATA ?= $(WORKSPACE_DATA)
endif

LINTED := pyro_flowzoo tests examples benchmarks

.PHONY: test demo lint venv clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Lint first: a style error fails CI as a test does.
test: lint
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) examples/demo.py --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

clean:
	rm -rf $(VENV) runs
