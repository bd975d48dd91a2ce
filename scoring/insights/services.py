"""Computing and reading a run's stored analytics. A worker computes them when the run
finishes (``run_finished``); a page reads what is stored and, when nothing is, asks a worker
once. Nothing here changes a rubric: the flags send a person to the editor or to the
co-author's critique, whose proposals wait for a person to accept them."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import transaction

from scoring.insights.compute import run_figures
from scoring.insights.models import RunInsights
from scoring.insights.tasks import run_insights
from scoring.runs.models import Run

logger = logging.getLogger(__name__)


def insights_compute(*, run_id: int) -> RunInsights | None:
    """Compute and store the analytics of a finished run (None for a run not found or not
    finished). A failure is stored with its reason, never raised into the run's own work."""
    run = Run.objects.select_related("project").filter(pk=run_id).first()
    if run is None or not run.finished:
        return None
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    error = ""
    try:
        figures = run_figures(run)
    except Exception as exc:  # stored and shown; the run itself is done either way
        logger.exception("analytics of run %s", run_id)
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    insights, _ = RunInsights.objects.update_or_create(
        run=run, defaults={"figures": figures, "error": error, "seconds": seconds}
    )
    return insights


def insights_request(*, run: Run) -> None:
    """Ask a worker to compute the run's analytics once the caller's transaction commits."""
    run_id = run.pk
    transaction.on_commit(lambda: run_insights.apply_async((run_id,)))


def on_run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    run_insights.apply_async((run_id,))


def insights_of(*, run: Run) -> RunInsights | None:
    return RunInsights.objects.filter(run=run).first()
