# The front door: `make help` lists every workflow.
SHELL := /bin/bash
.DEFAULT_GOAL := help

-include .env
export

VENV := .venv
PYTHON := $(VENV)/bin/python
HONCHO := $(VENV)/bin/honcho
FERRETDB := .local/bin/ferretdb
INSTALLED := $(VENV)/.installed

# Local servers start only for the URLs that are not given.
LOCAL_SERVERS := $(if $(REDIS_URL),,redis) $(if $(MONGO_URI),,mongo)
APP_PROCESSES := ingestion reporting worker flower

.PHONY: help install services ingestion reporting worker flower run site key operator-key demo sites replay-dead replay-set-aside rebuild-rollups bench-ingest bench-pipeline bench-worker bench-reporting bench-ferretdb bench-transfer settings-docs tracker dashboard test test-unit lint format clean-data clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(INSTALLED) ## Create the virtualenv and install the pinned requirements (runtime and development)

$(INSTALLED): requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

local-servers: $(if $(REDIS_URL),,redis-server-bin) $(if $(MONGO_URI),,mongo-bin)

.PHONY: redis-server-bin mongo-bin local-servers chromium-bin node-bin secret-key
redis-server-bin:
	@command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

mongo-bin:
	@command -v mongod >/dev/null || $(MAKE) --no-print-directory $(FERRETDB)

# The browser test (tests/integration/test_browser.py) drives Debian's Chromium through its
# matching chromedriver; Selenium is not let to download a browser or a driver of its own.
chromium-bin:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# Node builds the page tag and runs the real JavaScript clients in the tests; the services
# never need it (the built tag is committed).
node-bin:
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

# The tag's pinned minifier and the real Plausible client, from the npm registry; again only
# when the lockfile changes.
TRACKER_DEPS := tracker/node_modules/.installed
$(TRACKER_DEPS): tracker/package.json tracker/package-lock.json | node-bin
	cd tracker && npm ci --no-audit --no-fund --loglevel=error
	touch $@

tracker: $(TRACKER_DEPS) ## Build the page tag app/ingestion/static/tracker.js from tracker/src/ (commit the result)
	cd tracker && npm run --silent build

# The dashboard's pinned chart library (uPlot) and bundler, again only when the lockfile changes.
DASHBOARD_DEPS := dashboard/node_modules/.installed
$(DASHBOARD_DEPS): dashboard/package.json dashboard/package-lock.json | node-bin
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	touch $@

dashboard: $(DASHBOARD_DEPS) ## Build the dashboard's chart reporting/dashboard/static/chart.js (and uPlot's CSS) from dashboard/src/ (commit the result)
	cd dashboard && npm run --silent build

# The dashboard's session cookies are signed with SECRET_KEY, and the rate limits hash client
# addresses keyed with ADDRESS_KEY (unkeyed, an IPv4 address is found by trying them all):
# when neither the environment nor .env sets one, a random one is written into .env
# (git-ignored) once, for every later run.
secret-key:
	@test -n "$(SECRET_KEY)" || { \
		printf '\n# Drawn by make: signs the dashboard sessions (docs/dashboard.md).\nSECRET_KEY=%s\n' \
			"$$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >> .env; \
		echo "make: wrote a new SECRET_KEY into .env"; }
	@test -n "$(ADDRESS_KEY)" || { \
		printf '\n# Drawn by make: keys the rate limits'"'"' address hashes (docs/visitors.md).\nADDRESS_KEY=%s\n' \
			"$$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >> .env; \
		echo "make: wrote a new ADDRESS_KEY into .env"; }

# FerretDB's source from the Go module proxy, patched by tools/ferretdb/*.patch.
$(FERRETDB): $(wildcard tools/ferretdb/*.go tools/ferretdb/go.* tools/ferretdb/*.patch tools/ferretdb/*.sh)
	tools/ferretdb/build.sh $(FERRETDB)

services: install local-servers ## Run the local Redis and MongoDB servers (those whose URL is unset)
	@if [ -z "$(strip $(LOCAL_SERVERS))" ]; then echo "REDIS_URL and MONGO_URI are set: nothing local to start"; else $(HONCHO) start $(LOCAL_SERVERS); fi

ingestion: install secret-key ## Run the ingestion service (port $INGESTION_PORT, default 3000)
	$(HONCHO) start ingestion

reporting: install secret-key ## Run the reporting service (port $REPORTING_PORT, default 4000)
	$(HONCHO) start reporting

worker: install ## Run a Celery worker
	$(HONCHO) start worker

flower: install ## Run Flower (port $FLOWER_PORT, default 5555)
	$(HONCHO) start flower

run: install local-servers secret-key ## Run everything: local servers, ingestion, reporting, worker, Flower
	$(HONCHO) start $(LOCAL_SERVERS) $(APP_PROCESSES)

FLASK := $(VENV)/bin/flask --app wsgi:ingestion

site: install ## Register a site and print a read key: SITE=example.com DOMAIN="example.com www.example.com" [SERVER_KEY=required] [UMAMI_ID=uuid]
	@test -n "$(SITE)" || { echo 'usage: make site SITE=example.com DOMAIN="example.com www.example.com" [SERVER_KEY=required] [UMAMI_ID=uuid]'; exit 2; }
	@$(FLASK) site add "$(SITE)" $(foreach domain,$(DOMAIN),--domain "$(domain)") $(if $(filter required,$(SERVER_KEY)),--require-server-key) $(if $(UMAMI_ID),--umami-id "$(UMAMI_ID)")
	@$(FLASK) key create "$(SITE)"

key: install ## Print a new read key of a registered site, or with SERVER=1 a server key: SITE=example.com
	@test -n "$(SITE)" || { echo 'usage: make key SITE=example.com [SERVER=1]'; exit 2; }
	@$(FLASK) key create "$(SITE)" $(if $(SERVER),--server)

operator-key: install ## Print a new operator key (every site, /health/pipeline)
	@$(FLASK) key create --operator

# Through the running ingestion service, as a server sends for its visitors (docs/operations.md).
demo: install ## Register SITE (default demo.example) and send DAYS (30) days of demo traffic to the running services; prints a read key
	@$(FLASK) site add "$(or $(SITE),demo.example)" --domain "$(or $(SITE),demo.example)"
	@DEMO_SERVER_KEY="$$($(FLASK) key create "$(or $(SITE),demo.example)" --server | tail -n 1)" \
		$(FLASK) seed-demo "$(or $(SITE),demo.example)" --days "$(or $(DAYS),30)"
	@$(FLASK) key create "$(or $(SITE),demo.example)"

sites: install ## List the registered sites and the read keys' ids
	@$(FLASK) site list
	@$(FLASK) key list

replay-dead: install ## Re-enqueue the dead-lettered events and remove those re-enqueued
	$(VENV)/bin/flask --app wsgi:ingestion replay-dead

replay-set-aside: install ## Give the compactor again the rollup entries it set aside (see /health/pipeline)
	$(VENV)/bin/flask --app wsgi:reporting replay-set-aside

rebuild-rollups: install ## Recompute rollups from raw events: SITE_ID=... START=YYYY-MM-DD [END=YYYY-MM-DD]
	$(VENV)/bin/flask --app wsgi:reporting rebuild-rollups --site-id "$(SITE_ID)" --start "$(START)" $(if $(END),--end "$(END)")

# promtool, which checks docs/monitoring/alerts.yml in the tests: pinned, from the Go module
# proxy (Prometheus's own module, whose v0.3xx versions are its 3.x releases).
PROMTOOL := .local/bin/promtool
PROMETHEUS_VERSION := v0.316.0

$(PROMTOOL):
	GOBIN=$(CURDIR)/.local/bin go install github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)


# The real clients of the drop-in endpoints (tests/integration/test_dropin.py), from npm at
# the versions tests/clients/package-lock.json pins; installed again only when that changes.
CLIENTS := tests/clients/node_modules/.installed
$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json | node-bin
	cd tests/clients && npm ci --no-audit --no-fund --silent
	touch $@

test: install local-servers chromium-bin $(PROMTOOL) $(CLIENTS) $(TRACKER_DEPS) $(DASHBOARD_DEPS) ## Run the whole test suite (unit, then integration on real servers)
	$(PYTHON) -m pytest

test-unit: install $(PROMTOOL) $(TRACKER_DEPS) $(DASHBOARD_DEPS) ## Run only the unit tests (no servers)
	$(PYTHON) -m pytest tests/unit

bench-ingest: install redis-server-bin ## Ingestion throughput and latency against a bare Flask endpoint (prints tables; ARGS=options)
	@command -v hey >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey; }
	$(PYTHON) -m bench.ingest $(ARGS)

# vegeta, the open-loop generator of `make bench-pipeline`: pinned, from the Go module proxy.
VEGETA := .local/bin/vegeta
VEGETA_VERSION := v12.12.0

$(VEGETA):
	GOBIN=$(CURDIR)/.local/bin go install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

bench-pipeline: install redis-server-bin mongo-bin $(VEGETA) ## End to end, every process as `make run` starts it, on a pre-filled store (prints a table; ARGS=options)
	@command -v hey >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey; }
	$(PYTHON) -m bench.pipeline $(ARGS)

bench-worker: install local-servers ## Worker throughput: batch design vs one task per event (prints a table)
	$(PYTHON) -m bench.worker --profile

bench-reporting: install redis-server-bin mongo-bin ## Reporting latency over N synthetic events, cache off and on (N=1000000, ARGS=options)
	$(PYTHON) -m bench.reporting --events $(or $(N),1000000) $(ARGS)

bench-ferretdb: install ## FerretDB's _id pushdown: stock v1.24.2 against the patched build, N events (prints a table; ARGS=options)
	$(PYTHON) -m bench.ferretdb_pushdown --events $(or $(N),1000000) $(ARGS)

bench-transfer: install redis-server-bin mongo-bin ## The export-import round trip of N events through every process (N=10000, ARGS=options)
	$(PYTHON) -m bench.transfer --events $(or $(N),10000) $(ARGS)

settings-docs: install ## Regenerate .env.example and docs/configuration.md's table from app/settings.py
	$(PYTHON) -m tools.settings_doc

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean-data: ## Remove the local data in var/ (Redis's and MongoDB's files): a fresh store
	rm -rf var

clean: clean-data ## Remove the local data, the virtualenv and .local (the FerretDB build, vegeta, promtool)
	rm -rf $(VENV) .local
