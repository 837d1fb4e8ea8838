# Every target bootstraps .venv from nothing (idempotently) before it runs.
SHELL := /bin/bash

# First interpreter >= 3.12 found: `python3.12`, `python3.13`, then pyenv installs. Override with PYTHON=.
PYTHON ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then echo $$p; break; fi; done)

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: install generate check-generated lint test test-full demo bench bench-quick stress docs docs-serve clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python >= 3.12 found; run 'make PYTHON=/path/to/python3.12 ...'" >&2; exit 1; fi
	@if [ ! -x $(PY) ]; then echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,docs,operators,soft-ops-advanced]'
	@touch $(STAMP)

generate: $(STAMP)
	$(PY) -m codegen

check-generated: $(STAMP)
	$(PY) -m codegen --check

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP)
	$(MAKE) --no-print-directory check-generated
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not slow and not fuzz and not peer"

test-full: $(STAMP)
	$(MAKE) --no-print-directory check-generated
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not peer"

demo: $(STAMP)
	$(PY) -m examples

# The peer (softjax, the `bench` extra) installs next to the project's jax pin, so ours and
# the peer run in the same process on the same jax. BENCH_ARGS passes options through,
# e.g. make bench BENCH_ARGS="--ops sort rank --methods fast_soft_sort".
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,docs,operators,soft-ops-advanced,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m pytest -q -m peer tests/benchmarks
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(PY) -m benchmarks --sizes 64 512 --repeats 3 $(BENCH_ARGS)

# Float32 against float64 per method and mode, and the distance to hard at a small softness
stress: $(STAMP)
	$(PY) -m benchmarks.stress $(STRESS_ARGS)

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	$(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) build site .pytest_cache .ruff_cache
