"""A real Celery worker in a subprocess, for tests that cross the broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def celery_worker(
    name: str, *, env: dict[str, str] | None = None, queues: str = "default"
) -> Iterator[subprocess.Popen]:
    """Start a worker on ``queues`` (comma-separated) and wait until it answers a ping."""
    from rubricstudio.celery import app

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "rubricstudio",
            "worker",
            "-Q",
            queues,
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
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "rubricstudio.settings", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        replies: list[dict] = []
        while time.monotonic() < deadline and not replies:
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            replies = app.control.ping(destination=[name], timeout=1.0) or []
        assert replies == [{name: {"ok": "pong"}}], "the worker did not answer"
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)
