# Identity Portal — the two commands of the quick start are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format install migrate clean screenshots soak

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput

# PORTAL_DEV_SERVER tells the settings where the server listens: the issuer, the audience and
# the links in emails follow HOST and PORT unless PORTAL_ISSUER / PORTAL_BASE_URL are set.
RUN_ENV := DEBUG=$${DEBUG:-1} PORTAL_DEV_SERVER=$(HOST):$(PORT)

# The webhook sender runs beside the development server (and stops with it), so "Send test
# event" and lifecycle webhooks really go out under `make run`.
run: migrate
	$(RUN_ENV) $(PY) manage.py seed_demo
	@echo "Identity Portal: http://$(HOST):$(PORT)/  (owner@acme.example / demo-password)"
	$(RUN_ENV) $(PY) manage.py deliver_webhooks --loop --interval 2 & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT; $(RUN_ENV) $(PY) manage.py runserver $(HOST):$(PORT)

# The suite runs on one pytest-xdist worker per core (TEST_WORKERS=0: in this process, one test
# after another). Tests are handed out in collection order, so each worker still runs pytest-django's
# order: database tests in transactions first, then those that flush the database.
TEST_WORKERS ?= auto
test: $(STAMP)
	DEBUG=$${DEBUG:-1} $(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# The long soak (docs/operations.md): 60 s of mixed traffic, 32 clients, against gunicorn.
soak: $(STAMP)
	DEBUG=1 PORTAL_SOAK_SECONDS=$${PORTAL_SOAK_SECONDS:-60} $(PY) -m pytest -q tests/reliability/test_soak.py

# PNGs of the main pages for the README, from a throwaway database (needs Chromium).
screenshots: $(STAMP)
	DEBUG=1 $(PY) -m tests.e2e.screenshots

# lint-imports checks the import contracts in pyproject.toml ([tool.importlinter]): the layers
# tokens -> credentials -> portal, independent credential kinds, no cycles inside tokens.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmarks (docs/performance.md): separate extra and stamp, so `make test` never needs them.
BENCH_STAMP := $(VENV)/.bench-installed-stamp
.PHONY: bench bench-smoke

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run.py --profile $(BENCH_ARGS)

bench-smoke: $(BENCH_STAMP)
	$(PY) bench/run.py --smoke $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/ test-output/ .pytest_cache .ruff_cache
