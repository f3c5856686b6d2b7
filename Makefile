# `make demo` and `make test` each create .venv when absent, install rlbridge into it, and run.
# Every pip call passes -c constraints.txt: it pins torch to the local CPU wheel (an unpinned
# torch pulls gigabytes of CUDA packages) and holds the set of versions the suite was run with.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.rlbridge-installed

.PHONY: install demo test lint bench wheel clean

$(STAMP): pyproject.toml setup.py setup.cfg constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/rlbridge demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(PIP) install --quiet -c constraints.txt mypy ruff
	$(BIN)/ruff check engine plugins strategies tests benchmarks
	$(BIN)/mypy engine plugins strategies

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

wheel: install
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
