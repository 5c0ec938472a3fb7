# `make demo` sets everything up and runs the main job; `make test` sets everything up and runs the tests.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

SEEDS ?= 1
DEMO ?= runs/demo
HT := $(VENV)/bin/hare-tortoise

FASHION_DIR := /usr/share/datasets/fashion-mnist
# CI sets REQUIRE_SYSTEM_DEPS=1: there a missing Debian package is an error, elsewhere a warning (its test skips).
REQUIRE_SYSTEM_DEPS ?= 0

.PHONY: setup test demo system-deps bench

# torch goes in first and pinned: the package's torch range is then satisfied, and pip pulls no CUDA build.
$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's dataset-fashion-mnist: the real Fashion-MNIST files that one test and the fashion-* presets read.
system-deps:
	@if [ ! -d $(FASHION_DIR) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; \
	  elif [ "$(REQUIRE_SYSTEM_DEPS)" = 1 ]; then echo "error: cannot install dataset-fashion-mnist (not root, no sudo)" >&2; exit 1; \
	  else echo "warning: dataset-fashion-mnist is not installed (needs root): the real-data test will be skipped" >&2; fi; \
	fi
	@if [ "$(REQUIRE_SYSTEM_DEPS)" = 1 ] && [ ! -d $(FASHION_DIR) ]; then echo "error: $(FASHION_DIR) is missing" >&2; exit 1; fi

test: $(STAMP) system-deps
	$(PY) -m pytest -q --durations=5

# The paper's point on MNIST-1D (preset mnist1d-warm; the cold run keeps an EMA shadow): cold, cold EMA, warm,
# S&P, EMA and H&T, for seeds 1..SEEDS, then the table and the plots. Finished runs are skipped on a re-run.
demo: $(STAMP)
	set -e; for seed in $$(seq 1 $(SEEDS)); do \
	  $(HT) run mnist1d-cold --seed $$seed --out $(DEMO)/cold/seed$$seed; \
	  for method in base shrink_perturb ema hare_tortoise; do \
	    $(HT) run mnist1d-warm --method $$method --seed $$seed --out $(DEMO)/warm-$$method/seed$$seed; \
	  done; \
	done
	$(HT) report $(DEMO) --out $(DEMO)/report

# Benchmarks: ratios measured in one run, written to benchmarks/results/latest.json (see benchmarks/README.md).
bench: $(STAMP)
	$(PY) benchmarks/run.py
