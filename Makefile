# Quick start: `make demo` runs the main job on the built-in simulated bench,
# `make test` runs the test suite without the tests marked slow (`make test-all`, which CI's
# .ci/run uses, runs them too). All create or update .venv themselves.
PY ?= python3
VENV := .venv
# Two workers; a module sharing a module-scoped fixture stays on one worker, longest tests first
# (tests/conftest.py, tests/_slowest.py).
XDIST := -n 2 --dist loadgroup --no-loadscope-reorder
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[gui,test]'
	touch $(STAMP)

.PHONY: venv demo test test-fast test-slow test-all bench mutation
venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/snnbench demo

# MARKS selects by marker; .ci/run passes MARKS= (empty: every test, the slow ones included).
MARKS ?= not slow
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(XDIST) -q -m "$(MARKS)"

test-fast: test

test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(XDIST) -q -m slow

test-all: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest $(XDIST) -q

# Mutation testing of the core modules (hours for every mutant; not in CI). A quick estimate:
# `make mutation MUTATION_ARGS="--sample 60 --survivors"` (score, 95 % interval and survivors per
# module; each module against its own tests). See tools/mutation.py, decision 0013.
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[gui,test,mutation]'
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python tools/mutation.py $(MUTATION_ARGS)

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(VENV)/bin/python $$b || exit 1; done
