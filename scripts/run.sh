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
# Local judges and embeddings (torch, transformers, sentence-transformers): opt in.
if [ "${RUBRICSTUDIO_ML:-0}" = "1" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-ml.txt
fi
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py demo_setup
FAKE_LLM_PORT=${FAKE_LLM_PORT:-8001}
# The fake LLM listens on loopback, which LLM requests reach only where the site allows it.
export LLM_PRIVATE_HOSTS="${LLM_PRIVATE_HOSTS:+$LLM_PRIVATE_HOSTS,}127.0.0.1:${FAKE_LLM_PORT}"
.venv/bin/python manage.py demo_llm_endpoint --url "http://127.0.0.1:${FAKE_LLM_PORT}/v1"
if [ "${RUBRICSTUDIO_ML:-0}" = "1" ]; then
  .venv/bin/python manage.py demo_local_judge
fi

.venv/bin/celery -A rubricstudio worker -Q default,gpu --loglevel=info --concurrency=2 \
  --logfile=var/worker.log &
WORKER=$!
# An offline, OpenAI-compatible fake LLM so co-authoring works with no network or key.
# Its model fake-judge-gullible obeys instructions hidden in responses (for judge probes).
.venv/bin/python -m fakellm --port "$FAKE_LLM_PORT" --follow-injections fake-judge-gullible \
  > var/fakellm.log 2>&1 &
FAKE_LLM=$!
trap 'kill $WORKER $FAKE_LLM 2>/dev/null || true' EXIT INT TERM
echo "Celery worker started (pid $WORKER, log var/worker.log)"
echo "Offline fake LLM on http://127.0.0.1:${FAKE_LLM_PORT}/v1 (log var/fakellm.log)"
echo "RubricStudio: http://127.0.0.1:${PORT}/  (health: http://127.0.0.1:${PORT}/healthz)"
.venv/bin/python manage.py runserver "127.0.0.1:${PORT}"
