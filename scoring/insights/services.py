"""Computing and reading a run's stored analytics. A worker computes them when the run
finishes (``run_finished``); a page reads what is stored and, when nothing is, asks a worker
once. Nothing here changes a rubric: the flags send a person to the editor or to the
co-author's critique, whose proposals wait for a person to accept them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from annotation.errors import ApplicationError
from annotation.prompts.models import Prompt
from annotation.rubrics.models import RubricVersion
from scoring.coauthoring.models import CoauthorJob
from scoring.coauthoring.services import job_start
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


def _latest(project_id: int, *, pairwise: bool) -> Run | None:
    runs = Run.objects.without_probes().filter(project_id=project_id, status=Run.Status.DONE)
    runs = runs.filter(mode=Run.Mode.PAIRWISE) if pairwise else runs.exclude(mode=Run.Mode.PAIRWISE)
    return runs.order_by("-finished_at", "-pk").first()


def on_run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    """A run's own analytics; a pairwise run also changes the leaderboard and the position
    figures of the project's latest graded run. A judge probe's run has its own report."""
    run = Run.objects.without_probes().filter(pk=run_id).first()
    if run is None:
        return
    run_insights.apply_async((run_id,))
    if run.mode == Run.Mode.PAIRWISE:
        graded = _latest(run.project_id, pairwise=False)
        if graded is not None:
            run_insights.apply_async((graded.pk,))


def on_queue_settled(sender: Any, project_id: int, queue_id: int, **kwargs: Any) -> None:
    """New expert labels change label agreement, tail accuracy and the labels' leaderboard
    of the project's latest runs."""
    for pairwise in (False, True):
        run = _latest(project_id, pairwise=pairwise)
        if run is not None:
            run_insights.apply_async((run.pk,))


def insights_of(*, run: Run) -> RunInsights | None:
    return RunInsights.objects.filter(run=run).first()


@dataclass(frozen=True)
class Place:
    """Where a criterion of the figures lives now: its rubric and that rubric's prompt."""

    rubric_id: int
    prompt_id: int | None


def criterion_places(figures: dict[str, Any]) -> dict[str, Place]:
    """criterion key → its rubric (from the version the run judged), in one query."""
    versions = {c["version"] for c in figures.get("criteria", []) if c.get("version")}
    rows = RubricVersion.objects.filter(pk__in=versions).values_list(
        "pk", "rubric_id", "rubric__prompt_id"
    )
    by_version = {pk: Place(rubric, prompt) for pk, rubric, prompt in rows}
    return {
        c["key"]: by_version[c["version"]]
        for c in figures.get("criteria", [])
        if c.get("version") in by_version
    }


def critique_send(*, run: Run, key: str, actor: User) -> CoauthorJob:
    """Send the flagged criteria of the rubric that holds ``key`` to the co-author's
    Critique, their reasons and figures carried into the proposal's notes. The proposal
    changes nothing until a person accepts it."""
    insights = insights_of(run=run)
    if insights is None or not insights.figures:
        raise ApplicationError("This run's analytics are not computed yet.")
    figures = insights.figures
    places = criterion_places(figures)
    place = places.get(key)
    if place is None:
        raise ApplicationError("That criterion is not in this run's analytics.")
    if place.prompt_id is None:
        raise ApplicationError(
            "A project-wide criterion: Critique works on a prompt's rubric. Open it in the editor."
        )
    flagged = [
        {"text": c["text"], "reasons": [f["reason"] for f in c["flags"]]}
        for c in figures["criteria"]
        if c["flags"] and places.get(c["key"]) == place
    ]
    if not flagged:
        raise ApplicationError("No criterion of this rubric is flagged in this run.")
    prompt = Prompt.objects.get(pk=place.prompt_id)
    return job_start(
        project=run.project,
        actor=actor,
        kind=CoauthorJob.Kind.CRITIQUE,
        prompt=prompt,
        analytics={"run": run.pk, "criteria": flagged},
    )
