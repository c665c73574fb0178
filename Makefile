# milr: `make demo` runs the MNIST-1D preset end to end; `make test` runs the test suite.
# Both create .venv and install the pinned project into it when it is missing or stale.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CORES   ?= 2

PRESET ?= mnist1d

.PHONY: install fashion-data demo fashion wide quick tiny report readme check-readme test test-fast test-cluster lint bench gpu-check pin-envs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The demo: the whole DAG on MNIST-1D (real benchmark data, generated without a download).
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/mnist1d.yaml --profile profiles/default

# Fashion-MNIST's four official files from Debian's dataset-fashion-mnist (30 MB, no download
# of our own), installed when missing where apt-get and root are at hand; elsewhere a note:
# the preset then downloads them (torchvision) and the real-file tests skip.
FASHION_DIR := /usr/share/datasets/fashion-mnist
fashion-data:
	@test -f $(FASHION_DIR)/t10k-labels-idx1-ubyte.gz || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    apt-get install -y -qq dataset-fashion-mnist > /dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist > /dev/null; }; \
	  else \
	    echo "note: no $(FASHION_DIR): sudo apt-get install dataset-fashion-mnist (docs/data.md)"; \
	  fi

# Fashion-MNIST at the paper's MNIST size (60,000 real 28 x 28 images).
# What each target costs: docs/performance.md#what-a-study-costs (the one place for it).
# The files: data/FashionMNIST/raw, else Debian's dataset-fashion-mnist, else a download.
fashion: $(STAMP) fashion-data
	$(BIN)/snakemake --cores $(CORES) --configfile presets/fashion.yaml --profile profiles/default

# The paper's own regime, width >= 16 x depth everywhere (widths 128-1,024, depths 1-8, 3 seeds):
# MNIST-1D (docs/performance.md has the measured time).
wide: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/wide.yaml --profile profiles/default

# The README's results come from the demo's tables, never typed: rewrite them from a fresh demo,
# or (CI) fail with the differing lines where the README is not what the demo gives.
DEMO_TABLES := results/mnist1d/tables

# The wide, Fashion-MNIST and Gaussian blocks come from `make wide`, `make fashion` and
# `make quick` where they have run (too long for CI to repeat; pasted from those runs' tables).
OTHER_TABLES := results/wide/tables results/fashion/tables results/tables

readme: demo
	$(BIN)/milr summary --tables $(DEMO_TABLES) --readme README.md --write
	cp results/mnist1d/figures/laws.png docs/mnist1d_laws.png
	for tables in $(OTHER_TABLES); do \
	  if [ -f $$tables/study.json ]; then \
	    $(BIN)/milr summary --tables $$tables --readme README.md --write || exit 1; fi; done
	if [ -f results/fashion/figures/laws.png ]; then \
	  cp results/fashion/figures/laws.png docs/fashion_laws.png; fi
	if [ -f results/wide/figures/laws.png ]; then \
	  cp results/wide/figures/laws.png docs/wide_laws.png; fi

check-readme: demo
	$(BIN)/milr summary --tables $(DEMO_TABLES) --readme README.md --check

# The demo's whole DAG on a tiny MNIST-1D grid (a first look; not a result).
tiny: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/tiny.yaml --profile profiles/default

# One HTML page with every figure, caption and table of a finished run of presets/$(PRESET).yaml
# (make report PRESET=tiny), written into that preset's results folder.
report: $(STAMP)
	results=$$($(BIN)/python -c "import yaml, sys; print(yaml.safe_load(open(sys.argv[1]))['results'])" \
	  presets/$(PRESET).yaml) && \
	$(BIN)/snakemake --cores $(CORES) --configfile presets/$(PRESET).yaml --profile profiles/default \
	  --report $$results/report.html && echo "report: $$results/report.html"

# The synthetic Gaussian task (the CPU preset the cluster tests also run).
quick: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/quick.yaml --profile profiles/default

test: $(STAMP) fashion-data
	$(BIN)/python -m pytest

# A real single-node SLURM on localhost (installs slurm-wlm and munge with apt; needs root).
test-cluster: $(STAMP)
	eval "$$(tests/cluster/slurm-localhost.sh setup)" && \
	  { $(BIN)/python -m pytest tests/cluster -m cluster; status=$$?; \
	    tests/cluster/slurm-localhost.sh teardown; exit $$status; } || \
	  { tests/cluster/slurm-localhost.sh teardown; exit 1; }

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Each line is also a test (tests/test_lint.py runs this recipe); the last lints the rules that
# the preset leaves out (λ1 and range tests in jobs of their own).
lint: $(STAMP)
	$(BIN)/ruff check workflow tests bench docs/examples
	$(BIN)/ruff format --check workflow tests bench docs/examples
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile presets/quick.yaml
	$(BIN)/snakemake --lint --configfile presets/quick.yaml --config small_jobs_together=False

# Freeze the conda envs into envs/<name>.<platform>.pin.txt (needs conda >= 24.7.1; README).
pin-envs: $(STAMP)
	SNAKEMAKE=$(BIN)/snakemake workflow/bin/pin-envs

bench: $(STAMP)
	$(BIN)/python bench/trainer.py

# On a GPU machine: CUDA tests against the CPU, benchmarks, the quick preset on CUDA; one report
# in results/gpu-check/report.txt (docs/gpus.md).
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf results .snakemake
