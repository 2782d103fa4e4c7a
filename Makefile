# Two commands matter: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# Node test peers (web-push-testing, ...), pinned by package-lock.json, installed with npm ci.
NODE_PEERS := tests/peers/node
# Files Herald's pages serve (the API reference viewer), pinned likewise; optional for make run.
WEB_VENDOR := web/vendor

.PHONY: run test lint typecheck unit bench bench-fairness bench-webpush bench-fcm bench-apns bench-audience bench-reads clean

$(VENV)/.runtime: requirements.txt
	PYTHON=$(PYTHON) sh tools/prerequisites.sh run
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

$(NODE_PEERS)/node_modules/.installed: $(NODE_PEERS)/package.json $(NODE_PEERS)/package-lock.json
	npm ci --prefix $(NODE_PEERS) --no-audit --no-fund
	touch $@

$(WEB_VENDOR)/node_modules/.installed: $(WEB_VENDOR)/package.json $(WEB_VENDOR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(WEB_VENDOR) --no-audit --no-fund --ignore-scripts && touch $@; \
	else \
		echo "make: no npm here: /api-docs/ links /openapi.json instead of drawing it (install nodejs npm for the viewer)"; \
	fi

## make run: set up .venv and start Herald on embedded defaults (http://localhost:3978/)
run: $(VENV)/.runtime $(WEB_VENDOR)/node_modules/.installed
	$(PY) app.py

## make test: set up dev requirements and test peers, lint, type-check and run the whole suite
test: test-prerequisites $(VENV)/.dev $(NODE_PEERS)/node_modules/.installed \
		$(WEB_VENDOR)/node_modules/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

## make notify ARGS='--all --type it.outage --title "Mail is down"': the producer CLI
.PHONY: notify
notify: $(VENV)/.runtime
	$(PY) -m tools.notify $(ARGS)

## Python 3.11+ with venv, Node.js/npm and Chromium: installed with apt-get when run as root on
## Debian/Ubuntu, otherwise one line says what to install (tools/prerequisites.sh)
.PHONY: test-prerequisites
test-prerequisites:
	PYTHON=$(PYTHON) sh tools/prerequisites.sh test

lint: $(VENV)/.dev
	$(PY) -m ruff check .

typecheck: $(VENV)/.dev
	$(PY) -m mypy

unit: $(VENV)/.dev
	$(PY) -m pytest tests/unit

## make bench: the broadcast benchmark (unthrottled and with Teams' limits)
bench: $(VENV)/.dev
	$(PY) bench/broadcast.py

## make bench-fairness: singles during a Teams-limited broadcast, and 40 tenants at once
bench-fairness: $(VENV)/.dev
	$(PY) bench/fairness.py

## make bench-webpush: encrypted pushes/s to web-push-testing vs a loop of pywebpush.webpush
bench-webpush: $(VENV)/.dev $(NODE_PEERS)/node_modules/.installed
	$(PY) bench/webpush.py

## make bench-fcm: pushes/s to the FCM stand-in (5,000 tokens) vs a loop of messaging.send
bench-fcm: $(VENV)/.dev
	$(PY) bench/fcm.py

## make bench-apns: pushes/s to the APNs stand-in (5,000 iOS devices) vs a loop of aioapns
bench-apns: $(VENV)/.dev
	$(PY) bench/apns.py

## make bench-reads: read storms (10,000 people marking read at once), API p99 on SQLite
bench-reads: $(VENV)/.dev
	$(PY) bench/read_storm.py

## make bench-audience: expansion of a 50,000-member Entra ID group (members/s, peak RSS)
bench-audience: $(VENV)/.dev
	$(PY) bench/audience.py

## make teams-package TEAMS_APP_ID=<guid> TEAMS_BOT_ID=<MicrosoftAppId> TEAMS_HOST=<host>:
## the Teams app package for upload (TEAMS_BOT_ID defaults to MicrosoftAppId from the
## environment or .env, TEAMS_HOST to the host of an https HERALD_PUBLIC_URL)
.PHONY: teams-package
TEAMS_PACKAGE ?= herald-teams.zip
teams-package: $(VENV)/.runtime
	$(PY) -m deployment.teams.build --app-id "$(TEAMS_APP_ID)" --out "$(TEAMS_PACKAGE)" \
		$(if $(TEAMS_BOT_ID),--bot-id "$(TEAMS_BOT_ID)") $(if $(TEAMS_HOST),--host "$(TEAMS_HOST)")

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
