# ichpipe: the two commands a new user runs are `make demo` and `make test`.
# Both create .venv on first use (torch 2.13.0 CPU build first, never the CUDA
# build), then reuse it: a second run skips the install.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ichpipe-installed
DEMO   := demo-out

.PHONY: setup demo test lint bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	rm -rf $(DEMO)
	$(BIN)/ichpipe phantom --out $(DEMO)/study --seed 20261121 --distractors
	$(BIN)/ichpipe inspect --study $(DEMO)/study
	$(BIN)/ichpipe run --study $(DEMO)/study --out $(DEMO)/out
	$(BIN)/python -c "import json,glob; t=json.load(open('$(DEMO)/study/truth.json'))['hematoma']['volume_ml']; \
	  r=json.load(open(glob.glob('$(DEMO)/out/*/*/report.json')[0]))['hematoma']['volume_ml']; \
	  print(f'truth {t:.2f} mL, measured {r:.2f} mL ({100*(r-t)/t:+.1f} %)')"

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m pytest -q -p no:doctest bench --benchmark-only --benchmark-columns=min,median,max,rounds

clean:
	rm -rf $(DEMO) ichpipe-out .pytest_cache .mypy_cache .ruff_cache build dist
