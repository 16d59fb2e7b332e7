# Every target bootstraps itself on a fresh machine with Python 3.11 and registry access:
# uv is installed into its own tools environment (.tools), never into the project's (.venv).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON ?= 3.11
RUN := $(UV) run --no-sync

.PHONY: demo demo-fleet test lint bench sync clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml integrations/langchain/pyproject.toml integrations/llama-index/pyproject.toml
	$(UV) sync --locked --all-packages
	touch $@

sync: .venv/.synced

demo: sync
	$(RUN) python -m reliable_llm demo

# Four worker processes against a dead primary: per-process breakers versus shared on Redis.
demo-fleet: sync
	$(RUN) python examples/shared_breakers.py

test: sync
	$(RUN) pytest

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

bench: sync
	$(RUN) python benchmarks/run.py

clean:
	rm -rf .venv $(TOOLS)
