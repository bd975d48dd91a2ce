"""A real Celery worker starts from the project's app and answers on the configured broker."""

from __future__ import annotations

import os

from tests.workers import celery_worker


def test_worker_starts_and_answers_ping():
    """Runs on the configured broker: Redis in CI, kombu's filesystem transport otherwise."""
    with celery_worker(f"ci-{os.getpid()}@localhost") as worker:
        assert worker.poll() is None
