# `make demo`, `make test` and `make test-fast` each build .venv from nothing when it is missing.
# torch is installed first and pinned, so pip takes the CPU build and never a CUDA one.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.goldmine-installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,pyro,cluster,fast,physics]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m goldmine.demo

# the full suite: the doctests in src and every test; the README's test command and CI's (budget: 15 minutes
# on two busy cores)
test: $(STAMP)
	$(PY) -m pytest src tests

# the fast tier for daily work (budget: 2 minutes on two busy cores): the tests not marked slow (see
# pyproject.toml), without the doctests, some of which train networks
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

clean:
	rm -rf $(VENV) demo-output
