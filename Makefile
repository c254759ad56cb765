# One place for commands: people and CI run the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench bench-train lint clean

$(BIN)/cartpredict: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[learn,dev]'
	@touch $@

install: $(BIN)/cartpredict

run: install
	$(BIN)/cartpredict demo

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run.py

bench-train: install
	$(BIN)/python benchmarks/train.py

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) cartpredict.db cartpredict.db-wal cartpredict.db-shm
