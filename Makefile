# Quick start: `make demo` runs the main job on the built-in simulated bench,
# `make test` runs the test suite. Both create or update .venv themselves.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[gui,test]'
	touch $(STAMP)

.PHONY: venv demo test test-fast bench
venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snnbench demo

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -n 2 -q

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -n 2 -q -m "not slow"

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done
