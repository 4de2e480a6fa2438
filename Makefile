# Every target does its own set-up: venv, package, model, rendered sample streams.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE ?= sample_streams/walkthrough

.PHONY: setup run lint test test-fast bench eval console station-web clean

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

# the station's live view, kiosk and alignment pages on the looping sample stream (http://127.0.0.1:8090/)
station-web: setup
	$(PY) -m edge.web.station.demo_user var/station-web-users.txt
	$(VENV)/bin/thermal-edge run --config config/station-web-demo.toml

# the control-room console on the bundled sample streams (5 simulated gateways, images on);
# prints the URL and a demo login; Ctrl-C stops it. CONSOLE_PORT=8081 make console to move it.
CONSOLE_PORT ?= 8080
console: setup
	$(VENV)/bin/thermal-edge console demo --loop --port $(CONSOLE_PORT)

# Static checks, before the tests: lint + import order (ruff), types (mypy; strict on the pure
# modules), import direction between the packages (import-linter). Config in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: lint setup
	$(PY) -m pytest -q

# the tests that each take under 1 s (no @pytest.mark.slow): under 30 s in all, for the edit loop
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(VENV)/bin/thermal-edge bench

eval: setup
	$(VENV)/bin/thermal-edge eval --all --report docs/evaluation.md

clean:
	rm -rf $(VENV) models/*.onnx models/cache assets
