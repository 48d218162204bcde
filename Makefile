# mobiprox_lab: `make figures` reproduces every figure, `make test` runs the checks.
# Both build .venv on first use from pyproject.toml pinned by constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: all venv test test-slow test-all figures figures-quick lab clean clean-cache

all: figures

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# `make test` is CI's command: lint plus every test not marked slow (about 2 min).
# The slow end-to-end tests (training to the accuracy aims, notebooks, the browser
# playground, the quick figure pipeline) run with `make test-slow`.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

figures: $(STAMP)
	$(BIN)/mobiprox-lab figures

figures-quick: $(STAMP)
	$(BIN)/mobiprox-lab figures --quick

lab: $(STAMP)
	$(BIN)/jupyter lab $(ALLOW_ROOT) notebooks

clean:
	rm -rf figures/*.png figures/summary.md figures/summary.csv .pytest_cache test-artifacts

clean-cache:
	rm -rf data/cache
