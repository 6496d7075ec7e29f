# The two commands of the README:
#   make book   - set up the environment, run every study on its default profile and build the HTML book
#   make test   - set up the environment and run the test suite
#   make check-book - after make book: every page of _build/html in headless Chromium (maths, images, links, search)
#   make publish  - _build/html onto the gh-pages branch and push it (ghp-import)
#   make workflow - every study at its ci and lab profiles plus the parameter sweeps on CORES cores (Snakemake),
#                   then the gathered tables _runs/_results/*.csv; `make workflow-dry` lists what is stale
#   make paper    - the four paper profiles through the workflow (one GPU job at a time), then a table of
#                   their headline numbers (studies workflow table --profile paper)
#   make test-all - the tests including the slow ones (the lab goals and the four paper --smoke runs)
# Options: PROFILE=paper (book from another profile), PYTHON=python3.11, VENV=.venv, SHARED=../shared,
#          CORES=2, WORKFLOW_ARGS="--config profiles=[paper] --resources gpu=1" (extra snakemake arguments)

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= lab
SHARED  ?= $(abspath ../shared)
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=
CORES   ?= 2
WORKFLOW_ARGS ?=

# A local mirror of the real data (CI and the team have ../shared/data); without it, studies fall back to
# synthetic data and say so in the book.
ifneq ($(wildcard $(SHARED)/data),)
export STUDIES_DATA_MIRROR ?= $(SHARED)/data
endif
export MPLBACKEND ?= Agg
export PYTHONHASHSEED ?= 0

.PHONY: help venv test test-all book book-clean check-book publish lint clean workflow workflow-dry paper \
        gpu-check gpu-bundle

help:
	@echo "make book  [PROFILE=lab|paper]  run all studies and build _build/html/index.html"
	@echo "make check-book                 open every page of _build/html in headless Chromium and check it"
	@echo "make publish                    put _build/html on the gh-pages branch and push it (ghp-import)"
	@echo "make test                       run the tests (what CI runs)"
	@echo "make test-all                   also the slow tests (lab goals, paper --smoke runs)"
	@echo "make paper [CORES=16]           the four paper profiles (GPU box) and a table of their numbers"
	@echo "make lint                       ruff on lib/ tests/ benchmarks/"
	@echo "make workflow [CORES=2]         ci + lab of every study and the sweeps (Snakemake), then _runs/_results/"
	@echo "make workflow-dry               what the workflow would run, and why"
	@echo "make gpu-bundle                 wheels + verified data for a GPU machine (.gpu-bundle/) and its calls"
	@echo "make gpu-check                  on a CUDA machine: the four gpu profiles, records in results/gpu/"

$(STAMP): pyproject.toml requirements/lock.txt requirements/torch.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/torch.txt
	$(PY) -m pip install --quiet -r requirements/lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-all: venv
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

book: venv
	set -eo pipefail; $(PY) -m lib book --profile $(PROFILE)

check-book: venv
	$(PY) -m lib check-book --screenshot _build/check-book/maths.png

publish: venv
	$(PY) -m lib publish

book-clean:
	rm -rf _build

workflow: venv
	$(VENV)/bin/snakemake --cores $(CORES) --keep-going $(WORKFLOW_ARGS)

paper: venv
	set -o pipefail; $(VENV)/bin/snakemake --cores $(CORES) --keep-going --resources gpu=1 \
	  --config profiles=[paper] sweeps=false $(WORKFLOW_ARGS); status=$$?; \
	  $(PY) -m lib workflow table --profile paper; exit $$status

workflow-dry: venv
	$(VENV)/bin/snakemake --dry-run $(WORKFLOW_ARGS)

lint: venv
	$(VENV)/bin/ruff check lib tests benchmarks

# gpu-check runs where there is no .venv (the borrowed GPU machine: its python3 plus the carried bundle); it
# refuses with one line and exit code 2 without CUDA. GPU_CHECK_ARGS: e.g. --deadline 300 --study pgnaa
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
GPU_CHECK_ARGS ?=
gpu-check:
	@$(GPU_PY) -m lib.gpucheck check $(GPU_CHECK_ARGS)

gpu-bundle: venv
	$(PY) -m lib.gpucheck bundle

clean:
	rm -rf _build _runs .pytest_cache
