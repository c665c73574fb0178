# milr: `make demo` runs the MNIST-1D preset end to end; `make test` runs the test suite.
# Both create .venv and install the pinned project into it when it is missing or stale.

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CORES   ?= 2

.PHONY: install demo fashion quick tiny readme check-readme test test-fast test-cluster lint bench gpu-check pin-envs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The demo: the whole DAG on MNIST-1D (real benchmark data, generated without a download).
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/mnist1d.yaml --profile profiles/default

# Fashion-MNIST at the paper's MNIST size (60,000 real 28 x 28 images; ~30 minutes on 2 cores).
# The files: data/FashionMNIST/raw, else Debian's dataset-fashion-mnist, else a download.
fashion: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/fashion.yaml --profile profiles/default

# The README's results come from the demo's tables, never typed: rewrite them from a fresh demo,
# or (CI) fail with the differing lines where the README is not what the demo gives.
DEMO_TABLES := results/mnist1d/tables

readme: demo
	$(BIN)/milr summary --tables $(DEMO_TABLES) --readme README.md --write
	cp results/mnist1d/figures/eta_small_input_lr.png docs/mnist1d_eta_small_input_lr.png

check-readme: demo
	$(BIN)/milr summary --tables $(DEMO_TABLES) --readme README.md --check

# The demo's whole DAG on a tiny MNIST-1D grid in about a minute (a first look; not a result).
tiny: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/tiny.yaml --profile profiles/default

# The synthetic Gaussian task (the CPU preset the cluster tests also run).
quick: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile presets/quick.yaml --profile profiles/default

test: $(STAMP)
	$(BIN)/python -m pytest

# A real single-node SLURM on localhost (installs slurm-wlm and munge with apt; needs root).
test-cluster: $(STAMP)
	eval "$$(tests/cluster/slurm-localhost.sh setup)" && \
	  { $(BIN)/python -m pytest tests/cluster -m cluster; status=$$?; \
	    tests/cluster/slurm-localhost.sh teardown; exit $$status; } || \
	  { tests/cluster/slurm-localhost.sh teardown; exit 1; }

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check workflow tests bench
	$(BIN)/ruff format --check workflow tests bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile presets/quick.yaml

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
