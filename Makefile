# mobiprox_lab: `make figures` reproduces every figure, `make test` runs the checks.
# Both build .venv on first use from pyproject.toml pinned by constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: all venv test test-fast test-all figures figures-quick lab clean clean-cache

all: figures

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# `make test` is CI's command: lint plus every test, the slow end-to-end ones included
# (quick-mode figure pipeline, notebooks, the browser playground; ~12 min from a fresh
# clone, 10-11 of them the tests). `make test-fast` skips those (~4 min). `make test-all`
# also trains the default models to their accuracy aims (marker `training`, ~8 min more
# on a cold cache).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not training"

test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -m "not slow and not training"

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
