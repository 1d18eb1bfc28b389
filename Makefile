# Every target creates .venv when it is missing and installs the project from its own files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-core
BENCH_STAMP := $(VENV)/.installed-bench
DOCS_STAMP := $(VENV)/.installed-docs
export XLA_PYTHON_CLIENT_PREALLOCATE := false

.PHONY: run run-full test test-all claims ledger bench bench-quick bench-gpu docs lint format notebooks clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[dev,experiments]"
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -c requirements.lock -e ".[bench]"
	touch $(BENCH_STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -c requirements.lock -e ".[docs]"
	touch $(DOCS_STAMP)

run: $(STAMP)  ## the main job: quick 2-D flow-matching study, writes results/toy2d/quick/
	$(PY) -m experiments run toy2d --quick

run-full: $(STAMP)  ## the full protocol (5 seeds, 5,000 steps), writes results/toy2d/
	$(PY) -m experiments run toy2d

claims: $(STAMP)  ## re-judge every stored result from its measurements (fails on a verdict edited by hand)
	$(PY) -m experiments check

ledger: $(STAMP)  ## CLAIMS.md from results/
	$(PY) -m experiments ledger

test: $(STAMP)  ## fast suite (CI)
	$(PY) -m pytest -q -m "not slow" -n 2 --dist loadfile

test-all: $(STAMP)  ## everything, slow checks included
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(BENCH_STAMP)  ## benchmarks side by side with TorchCFM, POT, ott-jax; regenerates BENCHMARKS.md
	$(PY) -m benchmarks.run

bench-quick: $(BENCH_STAMP)  ## the same in under 5 minutes
	$(PY) -m benchmarks.run --quick

bench-gpu: $(BENCH_STAMP)  ## GPU rows (under 8 minutes): results/benchmarks_gpu.json and BENCHMARKS.md section 7
	if command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q -c requirements.lock "jax[cuda12]"; fi
	$(PY) -m benchmarks.gpu

docs: $(DOCS_STAMP)  ## the documentation site, built strictly into site/ (API reference, guides, notebooks, ledger)
	NO_MKDOCS_2_WARNING=1 $(PY) -m tools.build_docs

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

notebooks: $(STAMP)
	$(PY) -m pytest -q tests/test_notebooks.py tests/test_notebooks_more.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
