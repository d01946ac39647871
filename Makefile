# Two commands do everything on a fresh machine:  make demo   make test
# Each creates .venv and installs the project (with its dev tools) first if needed.
# make check is the fast tier for every edit (under 90 s): lint, types, import contracts, fast tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check test-live lint typecheck contracts browser unit bench fuzz clean

$(STAMP): pyproject.toml deploy/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r deploy/requirements.txt
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kfp-trigger demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The architecture (pyproject.toml [tool.importlinter]): layers, pure events/, no cycles.
contracts: $(STAMP)
	$(BIN)/lint-imports --no-cache

test: lint typecheck contracts browser
	$(BIN)/pytest

# Debian's chromium, for the status page's browser test (tests/e2e/test_status_page.py): installed
# with apt-get when make runs as root; otherwise say how. Without it that test is skipped, and
# fails under CI=true.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } || true; }
	@command -v chromium >/dev/null || echo "chromium is missing: sudo apt-get install chromium (for the browser test)"

check: lint typecheck contracts
	$(BIN)/pytest -q -m "not slow and not emulator"

# The backend contract against your own KFP cluster or Vertex project (tests/live/conftest.py says
# which variables to set); it stops with exit status 2 when none is set.
test-live: $(STAMP)
	$(BIN)/pytest tests/live

bench: $(STAMP)
	$(BIN)/python -m bench

# The coverage-guided engine (atheris) is optional: the fuzzer runs hypothesis alone without it.
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet atheris || echo "atheris did not install: hypothesis only"
	$(BIN)/python -m bench.fuzz --seconds $(or $(SECONDS_PER_ENGINE),60)

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

clean:
	rm -rf $(VENV) .kfp-trigger .mypy_cache .ruff_cache .pytest_cache
