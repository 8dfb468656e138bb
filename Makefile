# Two commands on a fresh clone: `make demo` and `make test`.
# Each creates .venv on first use, installs what it needs, then runs; later runs reuse the venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# A stamp per install set: editing pyproject.toml or this Makefile re-runs the install.
BASE_STAMP := $(VENV)/.stamp-base
TEST_STAMP := $(VENV)/.stamp-test
BENCH_STAMP := $(VENV)/.stamp-bench
DEMO_OUT ?= runs/demo

.PHONY: demo test bench setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BASE_STAMP): pyproject.toml Makefile | $(BIN)/python
	$(PIP) install -q --upgrade "pip>=24" setuptools wheel
	$(PIP) install -q -e .
	touch $@

$(TEST_STAMP): $(BASE_STAMP)
	$(PIP) install -q -e ".[test]"
	touch $@

$(BENCH_STAMP): $(TEST_STAMP)
	$(PIP) install -q -e ".[test,bench]"
	touch $@

setup: $(TEST_STAMP)

demo: $(BASE_STAMP)
	$(BIN)/vidlens demo --out $(DEMO_OUT)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_decode.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
