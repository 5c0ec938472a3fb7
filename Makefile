# `make demo` sets everything up and runs the main job; `make test` sets everything up and runs the tests.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

SEEDS ?= 1
HT := $(VENV)/bin/hare-tortoise

FASHION_DIR := /usr/share/datasets/fashion-mnist
# CI sets REQUIRE_SYSTEM_DEPS=1: there a missing Debian package is an error, elsewhere a warning (its test skips).
REQUIRE_SYSTEM_DEPS ?= 0

.PHONY: setup test demo system-deps bench reproduce reproduce-minatar rl-design rl-design-core rl-baselines-core rl-design-variants rl-continual-core continual

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

# lint and type-check first (ruff, mypy; configured in pyproject.toml): a finding fails before any test runs
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(PY) -m pytest -q --durations=5

# The paper's point on MNIST-1D (preset mnist1d-warm; the cold run keeps an EMA shadow): cold, cold EMA, warm,
# S&P, EMA and H&T, for seeds 1..SEEDS, then the table and the plots. The runs are `make reproduce`'s own (same
# directories, one thread per run), so either command skips what the other finished.
REPRO ?= runs/reproduction
demo: $(STAMP)
	$(HT) sweep mnist1d-cold --methods base --seeds 1-$(SEEDS) --out $(REPRO)/cold
	$(HT) sweep mnist1d-warm --methods base,shrink_perturb,ema,hare_tortoise --seeds 1-$(SEEDS) --out $(REPRO)/warm
	$(HT) report $(REPRO)/cold $(REPRO)/warm/base $(REPRO)/warm/shrink_perturb $(REPRO)/warm/ema \
	  $(REPRO)/warm/hare_tortoise --out $(REPRO)/report-demo

# Benchmarks: ratios measured in one run, written to benchmarks/results/latest.json (see benchmarks/README.md).
bench: $(STAMP)
	$(PY) benchmarks/run.py

# docs/REPRODUCTION.md's runs: every baseline of docs/METHODS.md on MNIST-1D in the warm-start and continual
# protocols, each with and without augmentation; cold-start references; H&T's sensitivity to its momentum and reset
# interval (in epochs and in steps); the resetting methods in the continual protocol evaluated after every epoch (to
# see the drops right after resets). 5 seeds each, one run per core. Re-running resumes.
REPRO_SEEDS ?= 1-5
METHODS := base,l2,l2_init,spectral,crelu,layernorm,sam,redo,shrink_perturb,shrink_perturb_noise,head_reset,full_reset,ema,self_distill,hare_tortoise
reproduce: $(STAMP)
	$(HT) sweep mnist1d-cold --methods base --seeds $(REPRO_SEEDS) --out $(REPRO)/cold
	$(HT) sweep mnist1d-cold-aug --methods base --seeds $(REPRO_SEEDS) --out $(REPRO)/cold-aug
	$(HT) sweep mnist1d-warm --methods $(METHODS) --seeds $(REPRO_SEEDS) --out $(REPRO)/warm
	$(HT) sweep mnist1d-warm-aug --methods $(METHODS) --seeds $(REPRO_SEEDS) --out $(REPRO)/warm-aug
	$(HT) sweep mnist1d-continual --methods $(METHODS) --seeds $(REPRO_SEEDS) --out $(REPRO)/continual
	$(HT) sweep mnist1d-continual-aug --methods $(METHODS) --seeds $(REPRO_SEEDS) --out $(REPRO)/continual-aug
	$(HT) sweep mnist1d-warm --methods hare_tortoise --seeds $(REPRO_SEEDS) --out $(REPRO)/sensitivity \
	  method.momentum=0.99,0.995,0.999 method.reset_every_epochs=2,5,10
	$(HT) sweep mnist1d-warm --methods hare_tortoise --seeds $(REPRO_SEEDS) --out $(REPRO)/steps \
	  method.reset_every_epochs=None method.reset_every_steps=126,315,630
	$(HT) sweep mnist1d-continual --methods base,shrink_perturb,head_reset,hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(REPRO)/every-epoch eval_every=1
	$(HT) report $(REPRO)/cold $(REPRO)/cold-aug $(REPRO)/warm $(REPRO)/warm-aug $(REPRO)/continual \
	  $(REPRO)/continual-aug --out $(REPRO)/report
	$(HT) report $(REPRO)/cold $(REPRO)/warm/base $(REPRO)/warm/hare_tortoise $(REPRO)/sensitivity $(REPRO)/steps \
	  --out $(REPRO)/report-sensitivity
	$(HT) report $(REPRO)/every-epoch --out $(REPRO)/report-every-epoch

# docs/RL.md's MinAtar comparison: the 5 games x base / H&T x 5 seeds at 50k agent steps, then the report.
MINATAR ?= runs/minatar-dqn-50k
reproduce-minatar: $(STAMP)
	$(HT) sweep minatar-dqn-50k --env all --methods base,hare_tortoise --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) report $(MINATAR) --out $(MINATAR)/report

# docs/RL.md's design study of H&T in RL (issue 18), 5 seeds, the cheapest first: on the 5 MinAtar games, base and
# the plasticity baselines beside H&T as the presets have it, (b) the agent's own target network as the bootstrap
# target and the Hare reset to the Tortoise every 20,000 updates (the runs of reproduce-minatar are among them, and
# not run again), then (b) at 10,000, (a) the Tortoise as the bootstrap target, (c) the Tortoise acting, each at both
# intervals; then the continual sequence with the baselines. About 275 runs of 50k steps (about 4.5 min each here,
# two at a time: 10 hours) and 30 of 150k steps. Re-running resumes.
RL_DESIGN := $(MINATAR)-design
RL_A := agent.bootstrap_from=method
RL_BASELINES := base,hare_tortoise,reset,shrink_perturb,redo,cbp
rl-design: $(STAMP)
	$(HT) sweep minatar-dqn-50k --env all --methods $(RL_BASELINES) \
	  --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) sweep minatar-dqn-50k --env all --methods hare_tortoise --seeds $(REPRO_SEEDS) --out $(RL_DESIGN)/b-10k \
	  method.reset_every_steps=10000
	$(HT) sweep minatar-dqn-50k --env all --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/a-tortoise-target-20k method.reset_every_steps=20000 $(RL_A)
	$(HT) sweep minatar-dqn-50k --env all --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/a-tortoise-target-10k method.reset_every_steps=10000 $(RL_A)
	$(HT) sweep minatar-dqn-50k --env all --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/c-tortoise-acts-20k method.reset_every_steps=20000 agent.act_with=method
	$(HT) sweep minatar-dqn-50k --env all --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/c-tortoise-acts-10k method.reset_every_steps=10000 agent.act_with=method
	$(HT) report $(MINATAR) $(RL_DESIGN) --out $(RL_DESIGN)/report
	$(HT) sweep minatar-continual --methods base,hare_tortoise,shrink_perturb,redo,cbp,reset --seeds $(REPRO_SEEDS) \
	  --out runs/minatar-continual
	$(HT) report runs/minatar-continual $(MINATAR)/space_invaders/base $(MINATAR)/asterix/base $(MINATAR)/seaquest/base \
	  --out runs/minatar-continual/report  # the single-game base runs: fresh agents of one stint

# The part of rl-design that fits one session here (runs do not outlive a session on this machine), as docs/RL.md
# reports it: on the three games where DQN scores above random play at 50k steps, base against H&T with (b) the
# agent's own target network (the presets' design) and (a) the Tortoise as the bootstrap target, resets every
# 20,000 updates, 5 seeds: 45 runs of 50k steps, two at a time, about 100 minutes. Its runs are rl-design's own
# (the same directories), so either target skips what the other did.
RL_CORE := space_invaders,seaquest,breakout
rl-design-core: $(STAMP)
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods base,hare_tortoise --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/a-tortoise-target-20k method.reset_every_steps=20000 $(RL_A)
	$(HT) report $(MINATAR)/space_invaders $(MINATAR)/seaquest $(MINATAR)/breakout $(RL_DESIGN)/a-tortoise-target-20k \
	  --out $(RL_DESIGN)/report-core

# The baselines part of rl-design that fits one session here, as docs/RL.md reports it: on Seaquest (where H&T led
# base in rl-design-core's runs) base, H&T and the four plasticity baselines (Nikishin et al.'s reset,
# shrink-and-perturb, ReDo, Continual Backprop); then Freeway, the fifth game, base and H&T; 5 seeds: 40 runs of 50k
# steps, two at a time, about 50 minutes here. Its runs are rl-design's own, so either target skips what the other
# did.
rl-baselines-core: $(STAMP)
	$(HT) sweep minatar-dqn-50k --env seaquest --methods $(RL_BASELINES) \
	  --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) sweep minatar-dqn-50k --env freeway --methods base,hare_tortoise --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) report $(MINATAR)/seaquest $(MINATAR)/freeway --out $(RL_DESIGN)/report-baselines

# The rest of rl-design's H&T variants on the three games where DQN leaves random play (RL_CORE), as docs/RL.md
# reports it: base and H&T as the presets have it ((b) every 20,000 updates), then (c) the Tortoise acting and (b)
# at 10,000, then (c) at 10,000 and (a) at 10,000, 5 seeds: 90 runs of 50k steps, two at a time, 4-5 minutes a pair
# here (the first three sweeps took 140 minutes; all of it, over 3 hours, is more than a session, so the most
# telling cells first); then one report over these and rl-design-core's (a) at 20,000 where that is here. Its runs
# are rl-design's own, so either target skips what the other did.
rl-design-variants: $(STAMP)
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods base,hare_tortoise --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/c-tortoise-acts-20k method.reset_every_steps=20000 agent.act_with=method
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods hare_tortoise --seeds $(REPRO_SEEDS) --out $(RL_DESIGN)/b-10k \
	  method.reset_every_steps=10000
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/c-tortoise-acts-10k method.reset_every_steps=10000 agent.act_with=method
	$(HT) sweep minatar-dqn-50k --env $(RL_CORE) --methods hare_tortoise --seeds $(REPRO_SEEDS) \
	  --out $(RL_DESIGN)/a-tortoise-target-10k method.reset_every_steps=10000 $(RL_A)
	$(HT) report $(MINATAR)/space_invaders $(MINATAR)/seaquest $(MINATAR)/breakout $(RL_DESIGN) \
	  --out $(RL_DESIGN)/report-variants

# The continual part of rl-design that fits one session here, as docs/RL.md reports it: the fresh single-game base
# agents of Space Invaders, Asterix and Seaquest (the plasticity references, the cheap runs first), then base and H&T
# on the sequence Space Invaders -> Asterix -> Seaquest, 5 seeds: 15 runs of 50k steps and 10 of 150k, two at a
# time, about 100 minutes. Its runs are rl-design's own, so either target skips what the other did.
RL_SEQUENCE := space_invaders,asterix,seaquest
rl-continual-core: $(STAMP)
	$(HT) sweep minatar-dqn-50k --env $(RL_SEQUENCE) --methods base --seeds $(REPRO_SEEDS) --out $(MINATAR)
	$(HT) sweep minatar-continual --methods base,hare_tortoise --seeds $(REPRO_SEEDS) --out runs/minatar-continual
	$(HT) report runs/minatar-continual $(MINATAR)/space_invaders/base $(MINATAR)/asterix/base $(MINATAR)/seaquest/base \
	  --out runs/minatar-continual/report-core

# docs/CONTINUAL.md's studies: the 200-task permuted and random-label streams on MNIST-1D with the methods that
# matter there (full_reset is the fresh-network reference of the plasticity ratio), 5 seeds; then H&T's reset
# interval x momentum x learning rate in the warm start and on the permuted stream, 3 seeds a cell; then the
# reports. Re-running resumes.
CONTINUAL ?= runs/continual
SEQUENCE_METHODS := base,l2,l2_init,shrink_perturb,redo,cbp,dash,plasticity_injection,normalize_project,ema,hare_tortoise,full_reset
continual: $(STAMP)
	$(HT) sweep mnist1d-permuted-long --methods $(SEQUENCE_METHODS) --seeds 1-5 --out $(CONTINUAL)/permuted
	$(HT) sweep mnist1d-random-labels-long --methods $(SEQUENCE_METHODS) --seeds 1-5 --out $(CONTINUAL)/random-labels
	$(HT) sweep mnist1d-warm --methods hare_tortoise --seeds 1-3 --out $(CONTINUAL)/warm-grid \
	  method.reset_every_epochs=2,5,10 method.momentum=0.99,0.995,0.999 lr=3e-4,1e-3,3e-3
	$(HT) sweep mnist1d-warm --methods base --seeds 1-3 --out $(CONTINUAL)/warm-grid-base lr=3e-4,1e-3,3e-3
	$(HT) sweep mnist1d-permuted-long --methods hare_tortoise --seeds 1-3 --out $(CONTINUAL)/hare-tortoise-grid \
	  method.reset_every_steps=126,315,630 method.momentum=0.99,0.995,0.999 lr=3e-4,1e-3,3e-3
	$(HT) sweep mnist1d-permuted-long --methods base --seeds 1-3 --out $(CONTINUAL)/hare-tortoise-grid-base \
	  lr=3e-4,1e-3,3e-3
	$(HT) report $(CONTINUAL)/permuted --out $(CONTINUAL)/report-permuted
	$(HT) report $(CONTINUAL)/random-labels --out $(CONTINUAL)/report-random-labels
	$(HT) report $(CONTINUAL)/warm-grid $(CONTINUAL)/warm-grid-base --out $(CONTINUAL)/report-warm-grid
	$(HT) report $(CONTINUAL)/hare-tortoise-grid $(CONTINUAL)/hare-tortoise-grid-base --out $(CONTINUAL)/report-grid
