"""A real Celery worker starts from the project's app and answers on the configured broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_worker_starts_and_answers_ping():
    """Runs on the configured broker: Redis in CI, kombu's filesystem transport otherwise."""
    from rubricstudio.celery import app

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "rubricstudio.settings"}
    name = f"ci-{os.getpid()}@localhost"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "rubricstudio",
            "worker",
            "-Q",
            "default",
            "--pool",
            "solo",
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        replies: list[dict] = []
        while time.monotonic() < deadline and not replies:
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            replies = app.control.ping(destination=[name], timeout=1.0) or []
        assert replies == [{name: {"ok": "pong"}}]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
