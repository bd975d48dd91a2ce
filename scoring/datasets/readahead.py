"""Reading the next batch from the database while the current one is written.

An export spends about as long waiting for PostgreSQL as it does building rows; a reader
thread with its own connection fetches batches ahead (at most ``depth`` waiting), so the
two overlap on two cores. Used only on PostgreSQL and outside a transaction: another
connection cannot see a transaction's uncommitted rows, and outside one every query reads
its own snapshot anyway, as it would on the calling thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection, connections

_DONE = object()


def can_read_ahead() -> bool:
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def read_ahead(batches: Callable[[], Iterator[Any]], depth: int = 2) -> Iterator[Any]:
    """The items of ``batches()``, produced on a reader thread at most ``depth`` ahead.
    An error on the reader is raised here; closing this iterator early stops the reader
    and waits for it (its connection is closed either way)."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches():
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)
        finally:
            connections.close_all()

    reader = threading.Thread(target=read, name="export-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
