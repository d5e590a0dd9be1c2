# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Pinned versions: requirements.lock (what the package needs; the Dockerfile installs
# it) and requirements-test.lock (that plus the test extra; CI and `make install`).
# `make lock` regenerates both from pyproject.toml.
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
UNIVERSAL := --universal --python-version 3.11
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(TEST_LOCK) | cksum | cut -d' ' -f1)

.PHONY: install demo test lint unit integration clean lock

$(STAMP): pyproject.toml $(TEST_LOCK)
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 needed" if sys.version_info < (3, 11) else 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -r $(TEST_LOCK)
	$(PIP) install --quiet --no-deps -e .
	@$(PIP) check || { echo "$(TEST_LOCK) misses what pyproject.toml asks for: run make lock"; exit 1; }
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet 'uv>=0.5'
	$(BIN)/uv pip compile --quiet $(UNIVERSAL) pyproject.toml -o $(LOCK)
	$(BIN)/uv pip compile --quiet $(UNIVERSAL) --extra test pyproject.toml -o $(TEST_LOCK)

demo: install
	$(BIN)/switchyard up --demo

lint: install
	$(BIN)/ruff check orchestrator workers tests loadtests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

clean:
	rm -rf $(VENV) .switchyard .pytest_cache .mypy_cache .ruff_cache
