#!/usr/bin/env bash
# One command to run the studio on a laptop: virtualenv, install, migrate, demo data,
# then the web server and a Celery worker (kombu filesystem broker, no server needed).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PORT=${PORT:-8000}
export DEBUG=${DEBUG:-1}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py demo_setup

.venv/bin/celery -A rubricstudio worker -Q default,gpu --loglevel=info --concurrency=2 \
  --logfile=var/worker.log &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
echo "Celery worker started (pid $WORKER, log var/worker.log)"
echo "RubricStudio: http://127.0.0.1:${PORT}/  (health: http://127.0.0.1:${PORT}/healthz)"
.venv/bin/python manage.py runserver "127.0.0.1:${PORT}"
