# Baton. `make run` starts the demo on a fresh machine (Python only); `make test` tests it.
# DATABASE_URL, REDIS_URL and the other settings in the environment pass straight through.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
# The interpreter that creates the virtualenv; override with `make run PYTHON=python3.12`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Reinstall only when the dependencies changed, not on every run.
STAMP := $(VENV)/.installed-stamp
PACKAGES := console escalations routing metrics
ARGS ?=

BATON_HOST ?= 127.0.0.1
BATON_PORT ?= 8000
export BATON_HOST BATON_PORT
export BATON_PUBLIC_URL ?= http://$(BATON_HOST):$(BATON_PORT)

.PHONY: help install run test lint fmt bench drills

help:
	@echo "make run    start Baton with demo data, a Celery worker and beat, and a simulated agent"
	@echo "make test   run the test suite (pass pytest options with ARGS='-k demo -x')"
	@echo "make lint   ruff check, ruff format --check, mypy"
	@echo "make fmt    ruff format and ruff check --fix"
	@echo "make bench  benchmarks on PostgreSQL and Redis, figures in var/bench/ (ARGS='ingest --quick')"
	@echo "make drills fault drills on PostgreSQL and Redis, results in var/bench/ (ARGS='--quick')"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Baton needs Python 3.11 or newer (python3.11 or python3)." >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Baton needs Python 3.11 or newer; $(PYTHON) is older." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	@# The folder broker (no Redis) needs its queue folders before the worker starts.
	@test -n "$$REDIS_URL" || mkdir -p "$${BATON_VAR_DIR:-var}/celery-queue" "$${BATON_VAR_DIR:-var}/celery-processed"
	@echo
	@echo "Baton:        $(BATON_PUBLIC_URL)/   (log in as reviewer1, supervisor1 or admin1; password baton-demo)"
	@echo "Django admin: $(BATON_PUBLIC_URL)/django-admin/   (admin1)"
	@echo "Agent API:    $(BATON_PUBLIC_URL)/api/v1/docs"
	@echo "Starting the server, a Celery worker, Celery beat and the simulated agent. Ctrl-C stops them all."
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" exec $(BIN)/honcho -f Procfile.dev start

test: $(STAMP)
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(PACKAGES)

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Both need PostgreSQL and Redis (BATON_BENCH_PG, BATON_BENCH_REDIS; see tests/bench/harness.py).
bench: $(STAMP)
	$(BIN)/python -m tests.bench $(ARGS)

drills: $(STAMP)
	$(BIN)/python -m tests.drills $(ARGS)
