"""The Celery app. Workers: `celery -A rubricstudio worker -Q default` (and `-Q gpu`).

Every worker also runs the stale-work sweeper (``scoring.recovery``) in a thread
of its main process, every ``SCORING_SWEEP_INTERVAL`` seconds: work a dead worker left
running is taken up again by whichever workers are alive, with no beat process to deploy
and no single process whose death would stop recovery.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rubricstudio.settings")

app = Celery("rubricstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each noun package keeps its tasks in its own ``tasks.py``. A task's name is what a queued
# message carries, so names stay as they were when the tasks lived in ``<app>.tasks``.
TASK_PACKAGES = [
    "annotation.projects",
    "annotation.prompts",
    "annotation.reviews",
    "scoring.analytics",
    "scoring.coauthoring",
    "scoring.datasets",
    "scoring.insights",
    "scoring.probes",
    "scoring.runs",
]
app.autodiscover_tasks(TASK_PACKAGES)

logger = logging.getLogger(__name__)


class Sweeper(threading.Thread):
    """Calls ``sweep`` at once, then every ``interval`` seconds until stopped. A failing
    sweep is logged and the next one happens on time; the thread's database connection is
    closed after each sweep (none is held in between, nor inherited by forked pool
    processes)."""

    def __init__(self, interval: float, sweep: Any = None) -> None:
        super().__init__(name="stale-work-sweeper", daemon=True)
        self.interval = interval
        self.sweep = sweep
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        if self.sweep is None:
            from scoring.recovery import stale_work_sweep

            self.sweep = stale_work_sweep
        while True:
            try:
                self.sweep()
            except Exception:
                logger.exception("stale-work sweep failed")
            finally:
                connection.close()
            if self.stopping.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopping.set()


_sweeper: dict[str, Sweeper] = {}


# celery has no type information: its signal decorators are untyped.
@worker_ready.connect  # type: ignore[untyped-decorator]
def _start_sweeper(**_: Any) -> None:
    from django.conf import settings

    if settings.SCORING_SWEEP_INTERVAL > 0 and "thread" not in _sweeper:
        _sweeper["thread"] = Sweeper(settings.SCORING_SWEEP_INTERVAL)
        _sweeper["thread"].start()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_sweeper(**_: Any) -> None:
    thread = _sweeper.pop("thread", None)
    if thread is not None:
        thread.stop()
        thread.join(timeout=10)
