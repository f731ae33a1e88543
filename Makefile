# Two entry points, each doing all set-up on a fresh machine (Python >= 3.11 with venv).
#   make benchmark   install, then run the default (CPU-sized) benchmark
#   make test        install, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: benchmark test smoke paper

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

benchmark: $(STAMP)
	$(BIN)/snakemake --cores all

smoke: $(STAMP)
	$(BIN)/snakemake --profile profiles/smoke

paper: $(STAMP)
	$(BIN)/snakemake --profile profiles/paper

test: $(STAMP)
	$(BIN)/python -m pytest
