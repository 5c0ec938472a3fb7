# `make demo` sets everything up and runs the main job; `make test` sets everything up and runs the tests.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

SEEDS ?= 1
DEMO ?= runs/demo
HT := $(VENV)/bin/hare-tortoise

.PHONY: setup test demo

# torch goes in first and pinned: the package's torch range is then satisfied, and pip pulls no CUDA build.
$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
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
