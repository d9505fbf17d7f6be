# ichpipe: the two commands a new user runs are `make demo` and `make test`.
# Both create .venv on first use (torch 2.13.0 CPU build first, never the CUDA
# build), then reuse it: a second run skips the install.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ichpipe-installed
DEMO   := demo-out

.PHONY: setup demo test test-fast lint bench bench-scaling onnx clean

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

# The whole suite; the 20 slowest tests are listed at the end (where the time goes).
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=20

# The edit loop: no lint, tests marked slow left out, fuzzing at 25 examples per
# strategy instead of 300, stop at the first failure. `make test` stays the gate.
test-fast: setup
	ICHPIPE_FUZZ_EXAMPLES=25 $(BIN)/python -m pytest -q -x -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m pytest -q -p no:doctest bench --benchmark-only --benchmark-columns=min,median,max,rounds

# Whole-command time and peak memory: threshold, default and full-size network on a 32-slice
# phantom, the matmul peaks, then the default model at 32, 150 and 300 thin slices (BENCHMARKS.md).
bench-scaling: setup
	$(BIN)/python bench/run_stages.py --repeats 1 --scaling 32,150,300

# Re-export the shipped checkpoints to ONNX (after retraining one): the CPU runtime runs this file, and only
# while its metadata names the checkpoint's SHA-256. Byte-reproducible with the same torch and onnx.
onnx: setup
	$(BIN)/python -m ichpipe.models.onnx_export models/checkpoints/ichpipe-default.pt
	$(BIN)/python -m ichpipe.models.onnx_export models/checkpoints/ichpipe-ends.pt

clean:
	rm -rf $(DEMO) ichpipe-out .pytest_cache .mypy_cache .ruff_cache build dist
