# Two commands on a fresh machine:
#   make demo   install, prepare the databases, start Airflow with Tempo and a local mail catcher
#   make test   install, then run the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: demo test lint bench bench-faults route-maps fuzz load system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime stack only (what a production install needs).
$(VENV)/.runtime: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The development harness (devtools/): Airflow on loopback and a mail catcher for the demo, the tests
# and the benchmarks. A second editable package, so that a production install never pulls it.
$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt devtools/pyproject.toml
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e devtools
	touch $@

# Runtime and harness plus test and benchmark tools; axe-core (npm), which the browser tests inject
# into every page to check its accessibility.
$(VENV)/.test: $(VENV)/.dev requirements-test.txt tests/e2e/package-lock.json
	$(BIN)/pip install --quiet -r requirements-test.txt
	npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
	touch $@

# System packages the tests use: PostgreSQL server binaries (store tests on a throwaway cluster) and
# chromium (browser tests through Playwright). Debian's packages; most machines already have them.
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
system-deps:
	@missing=""; \
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "[tempo] installing$$missing"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing >/dev/null; \
	fi

# `make demo DEMO_PORT=8081` when 8080 is taken. Ctrl-C, closing the terminal or `kill` of make stops
# every component within seconds.
DEMO_PORT ?= 8080
DEMO_SMTP_PORT ?= 1025
demo: $(VENV)/.dev
	$(BIN)/python -m tempo_dev demo --home "$(AIRFLOW_HOME)" --port $(DEMO_PORT) --smtp-port $(DEMO_SMTP_PORT)

test: $(VENV)/.test system-deps lint
	$(BIN)/pytest

lint: $(VENV)/.test
	$(BIN)/ruff check plugins devtools tests dags bench
	$(BIN)/ruff format --check plugins devtools tests dags bench
	$(BIN)/mypy

bench: $(VENV)/.test system-deps
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/waiting.py
	$(BIN)/python bench/reports.py

# Pictures of every process's route map for the README (docs/img/route-<dag_id>.png), taken with
# chromium on a stack started for the purpose.
route-maps: $(VENV)/.test system-deps
	$(BIN)/python -m tests.e2e.shoot_route_maps

# Kill each Airflow component while 1,000 steps wait (about 40 minutes on two busy cores).
bench-faults: $(VENV)/.test system-deps
	$(BIN)/python bench/faults.py --steps 1000

# Long fuzzing runs (the default suite runs the same tests with a few hundred cases): 10,000
# requests against the JSON API and 10,000 examples per form-field test on SQLite, 2,000 API requests
# on PostgreSQL. Prints one JSON line per test: cases, 5xx, store changed after a 4xx.
FUZZ_CASES ?= 10000
FUZZ_PG_CASES ?= 2000
FUZZ_SUMMARY := $(CURDIR)/.fuzz-summary.jsonl
fuzz: $(VENV)/.test system-deps
	rm -f $(FUZZ_SUMMARY)
	TEMPO_FUZZ_CASES=$(FUZZ_CASES) TEMPO_FUZZ_SUMMARY=$(FUZZ_SUMMARY) $(BIN)/pytest -q -p no:cacheprovider \
		tests/test_forms_fuzz.py "tests/web/test_fuzz_api.py::test_no_request_answers_5xx_and_no_refusal_changes_the_store[sqlite]"
	TEMPO_FUZZ_CASES=$(FUZZ_PG_CASES) TEMPO_FUZZ_SUMMARY=$(FUZZ_SUMMARY) $(BIN)/pytest -q -p no:cacheprovider \
		"tests/web/test_fuzz_api.py::test_no_request_answers_5xx_and_no_refusal_changes_the_store[postgres]"
	cat $(FUZZ_SUMMARY)

# 200 people completing tasks through the web for 60 s, on SQLite and PostgreSQL.
load: $(VENV)/.test system-deps
	$(BIN)/python bench/load.py

clean:
	rm -rf $(VENV) .airflow .pytest_cache .ruff_cache .mypy_cache
