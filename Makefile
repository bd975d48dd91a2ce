.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

venv: ## Create the virtualenv and install everything for development
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

run: ## Run the studio (SQLite, a Celery worker, the demo project)
	./scripts/run.sh

test: venv ## Run the test suite (PostgreSQL/Redis when DATABASE_URL/CELERY_BROKER_URL are set)
	SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} $(PY) -m pytest $(ARGS)

lint: venv ## ruff check and format check, types (mypy), the layering (import-linter), and missing migrations
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	SECRET_KEY=$${SECRET_KEY:-lint-only-not-secret} $(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

format: venv ## Format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

screenshots: venv ## Browser test; screenshots of the main pages land in var/screenshots (needs chromium)
	SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} $(PY) -m pytest tests/browser

.PHONY: help venv run test lint format screenshots bench bench-gpu

bench: venv ## Benchmarks: import (PostgreSQL, then SQLite), editor latency, scoring throughput (PostgreSQL + Redis), local judge (CPU, small), dataset export (1M judgment rows, PostgreSQL), rubric analytics (100k judgments), page latency under 20 users (gunicorn + locust, 1M judgments, PostgreSQL)
	BENCH_DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench_rs} $(PY) benchmarks/bench_import.py
	BENCH_DATABASE_URL= $(PY) benchmarks/bench_import.py
	$(PY) benchmarks/bench_editor.py
	$(PY) benchmarks/bench_scoring.py
	$(PY) benchmarks/bench_local_judge.py --size small
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_insights.py
	BENCH_DATABASE_URL=$${BENCH_PAGES_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench_pages} $(PY) benchmarks/bench_pages.py

bench-gpu: venv ## Local judge benchmark at full size on CUDA (0.5B and 1.5B, bf16)
	$(PY) benchmarks/bench_local_judge.py --size 0.5b --device cuda
	$(PY) benchmarks/bench_local_judge.py --size 1.5b --device cuda
