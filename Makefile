# Everything installs itself: Debian packages with apt-get when missing, Python packages into .venv,
# npm packages (uPlot for /ops and the portal; axe-core for the accessibility test) into node_modules
# from package-lock.json.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint unit integration deps venv node clean soak bench bench-panels bench-gateway bench-scale

demo: deps venv node  ## run the whole thing: broker, InfluxDB, ingester, 110 simulated households
	$(BIN)/reallabor up --simulate 110

test: deps lint node  ## lint, then every test against real Mosquitto and InfluxDB, on two workers
	$(BIN)/pytest -n 2 --dist loadgroup

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

integration: deps venv node
	$(BIN)/pytest tests/integration

deps:
	@missing=""; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v influxd >/dev/null || missing="$$missing influxdb"; \
	command -v influx >/dev/null || missing="$$missing influxdb-client"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v docker-compose >/dev/null || missing="$$missing docker-compose"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	command -v socat >/dev/null || missing="$$missing socat"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json | deps  ## uPlot, axe-core: exactly as locked
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

clean:
	rm -rf $(VENV) node_modules state .mypy_cache .ruff_cache .pytest_cache .hypothesis

soak: deps venv  ## the fault tests, longer: 60 s at 2,000 msg/s, SIGKILL every 10 s, one InfluxDB outage
	$(BIN)/python -m tests.soak --seconds 60 --rate 2000 --kill-every 10

bench: deps venv  ## ingester vs Node-RED and a naive bridge: drain, live, latency, cost, recovery (~25 min; JSON last)
	$(BIN)/python -m bench.ingest

bench-panels: deps venv  ## every panel's query on 110 households x 90 days of 1-minute data, p95 vs 500 ms (JSON last)
	$(BIN)/python -m bench.panels

bench-scale: deps venv  ## 1, 2 and 3 ingesters on one shared subscription vs mosquitto_sub: msg/s, CPU/msg (JSON last)
	$(BIN)/python -m bench.scale --rounds 2

bench-gateway: deps venv  ## gateway: 864,000-frame backlog drained to InfluxDB vs paho, steady-state RSS/CPU/SD writes (JSON last)
	$(BIN)/python -m bench.gateway
