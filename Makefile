# Two commands matter: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test lint typecheck unit bench clean

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

## make run: set up .venv and start Herald on embedded defaults (http://localhost:3978/api/messages)
run: $(VENV)/.runtime
	$(PY) app.py

## make test: set up dev requirements and test peers, lint, type-check and run the whole suite
test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(PY) -m ruff check .

typecheck: $(VENV)/.dev
	$(PY) -m mypy

unit: $(VENV)/.dev
	$(PY) -m pytest tests/unit

## make bench: the broadcast benchmark (unthrottled and with Teams' limits)
bench: $(VENV)/.dev
	$(PY) bench/broadcast.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
