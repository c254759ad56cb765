# One place for commands: people and CI run the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install chromium run test bench bench-train lint clean

$(BIN)/cartpredict: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[learn,dev]'
	@touch $@

install: $(BIN)/cartpredict chromium

# The browser tests (tests/browser/) drive Debian's chromium through Playwright, which brings no
# browser of its own here. Installed when missing (as root, through apt-get); where that cannot
# be done the install goes on and those tests are skipped, but when CI is set it fails.
CHROMIUM ?= /usr/bin/chromium

chromium:
	@[ -x $(CHROMIUM) ] || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  log=$$(mktemp); \
	  if command -v apt-get >/dev/null \
	    && apt-get update -qq >"$$log" 2>&1 \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium >>"$$log" 2>&1; \
	  then rm -f "$$log"; \
	  else tail -n 20 "$$log"; rm -f "$$log"; \
	    echo "chromium could not be installed: the browser tests skip (fail when CI is set)"; \
	    [ -z "$$CI" ]; \
	  fi; }

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
