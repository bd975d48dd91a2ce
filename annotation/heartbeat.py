"""A worker's sign of life, beaten from a thread while a long job runs.

A job that writes in long transactions (an import's one write) or waits on slow calls (a
co-authoring chunk) cannot record progress often enough for the recovery sweep to tell it
from a dead one. ``Heartbeat`` sets ``heartbeat_at`` to now on the job's row every
``interval`` seconds, on its own database connection, for as long as the job is still in
one of its running states; it dies with its process, which is what the sweep looks for.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import close_old_connections, connection
from django.db.models import Model
from django.utils import timezone

logger = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """``with Heartbeat(ImportJob, job.pk, running_statuses, 30.0): ...``"""

    def __init__(
        self, model: type[Model], pk: Any, statuses: tuple[str, ...], interval: float
    ) -> None:
        super().__init__(name=f"{model._meta.model_name}-{pk}-heartbeat", daemon=True)
        self.rows = model._default_manager.filter(pk=pk, status__in=statuses)
        self.interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    self.rows.update(heartbeat_at=timezone.now())
                except Exception:  # a locked SQLite file, a lost connection: beat again later
                    logger.warning("%s: heartbeat not recorded", self.name)
                    close_old_connections()
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        # A beat stuck on a lock or a dead connection must not hold the job: a daemon
        # thread left behind dies with the process.
        self.join(timeout=self.interval + 30)
