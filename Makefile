# Every target does its own set-up: venv, package, model, rendered sample streams.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE ?= sample_streams/walkthrough

.PHONY: setup run lint test bench eval clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)
	$(PY) -m edge.assets
	$(PY) -m edge.sim.render_all

run: setup
	$(VENV)/bin/thermal-edge demo $(SAMPLE)

# Static checks, before the tests: lint + import order (ruff), types (mypy; strict on the pure
# modules), import direction between the packages (import-linter). Config in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint setup
	$(PY) -m pytest -q

bench: setup
	$(VENV)/bin/thermal-edge bench

eval: setup
	$(VENV)/bin/thermal-edge eval --all --report docs/evaluation.md

clean:
	rm -rf $(VENV) models/*.onnx models/cache assets
