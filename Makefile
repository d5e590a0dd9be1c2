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

.PHONY: install demo test lint unit integration clean lock peers

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

# The LiteLLM proxy `switchyard bench overhead --peer litellm` measures, in a venv of its own
# with only the `peers` extra's requirements: it holds rich < 14, the test tools need >= 14.2.
PEERS_VENV := .venv-peers
PEERS = $(shell $(PYTHON) -c 'import shlex, tomllib; print(*map(shlex.quote, tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["peers"]))')

peers:
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip --disable-pip-version-check install --quiet $(PEERS)

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
	rm -rf $(VENV) $(PEERS_VENV) .switchyard .pytest_cache .mypy_cache .ruff_cache
