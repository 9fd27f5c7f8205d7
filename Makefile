# `make demo` and `make test` each build .venv from nothing when it is missing.
# torch is installed first and pinned, so pip takes the CPU build and never a CUDA one.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.goldmine-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,pyro,cluster]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m goldmine.demo

test: $(STAMP)
	$(PY) -m pytest src tests

clean:
	rm -rf $(VENV) demo-output
