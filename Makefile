# Every target does its own set-up: venv, package, model, rendered sample streams.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE ?= sample_streams/walkthrough

.PHONY: setup run test bench eval clean station-web

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

test: setup
	$(PY) -m pytest -q

bench: setup
	$(VENV)/bin/thermal-edge bench

eval: setup
	$(VENV)/bin/thermal-edge eval --all --report docs/evaluation.md

clean:
	rm -rf $(VENV) models/*.onnx models/cache assets
