"""Scoring runs: plan the units (responses × criteria × samples, or response pairs in both
orders), cut them into chunks, and judge each chunk in a Celery task that runs its calls
concurrently within the endpoint's limits.

Exactly-once by construction: a chunk is claimed with a status-guarded update (a lease lets
another worker take over a chunk whose worker died); every judgment has a unique key, so a
redelivered chunk finds what was already written and adds nothing twice; a judgment whose
key exists and succeeded is reused by any later run (shown as reused, costing nothing).

Here: creating a run (its plan stored as chunks and queued), and controlling it: pause,
cancel, resume, retry its failed judgments, and the sweep that requeues the chunks of
dead workers. Planning is in ``scoring.runs.planning``, running a chunk in
``scoring.runs.chunks``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.projects.services import audit
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
from scoring.runs.modes.base import Unit
from scoring.runs.modes.registry import mode_for
from scoring.runs.planning import chunk_lease, chunk_size, judge_hash, plan_units, template_version
from scoring.runs.recording import _finished, _refresh
from scoring.runs.tasks import score_chunk, score_chunk_local

logger = logging.getLogger(__name__)


@transaction.atomic
def run_create(  # type: ignore[no-untyped-def]
    *,
    project: Project,
    actor,
    endpoint: JudgeEndpoint,
    mode: str,
    sources: list[str] | None = None,
    prompt_ids: list[int] | None = None,
    versions: str = Run.Versions.LATEST,
    samples: int = 1,
    temperature: float | None = None,
    pair_plan: str = "",
    baseline_source: str = "",
    pairs_per_prompt: int = 3,
    budget: float | None = None,
    name: str = "",
    response_ids: list[int] | None = None,
) -> Run:
    """Plan the run, store its chunks and queue them once this transaction commits.
    ``response_ids``: judge exactly these responses (a judge probe's)."""
    if versions not in Run.Versions.values:
        raise ApplicationError(f"Unknown version policy “{versions}”.")
    if temperature is not None and not 0 <= temperature <= 2:
        raise ApplicationError("The temperature is between 0 and 2.")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise ApplicationError("A budget is a positive amount (leave it empty for none).")
    pair_plan = mode_for(mode).pair_plan_for(pair_plan)
    plan = plan_units(
        project=project, endpoint=endpoint, mode=mode, sources=list(sources or []),
        prompt_ids=list(prompt_ids or []), versions=versions, samples=samples,
        temperature=temperature, pair_plan=pair_plan, baseline_source=baseline_source,
        pairs_per_prompt=pairs_per_prompt, response_ids=response_ids,
    )  # fmt: skip
    run = Run.objects.create(
        project=project, endpoint=endpoint, created_by=actor, name=name[:200], mode=mode,
        versions=versions, sources=list(sources or []), prompt_ids=list(prompt_ids or []),
        samples=samples, temperature=temperature, pair_plan=pair_plan,
        baseline_source=baseline_source, pairs_per_prompt=pairs_per_prompt, budget=budget,
        model=endpoint.model, template_version=template_version(endpoint, mode),
        judge_hash=judge_hash(endpoint, temperature), total=plan.judgments,
    )  # fmt: skip
    size = chunk_size(mode, endpoint, len(plan.units))
    RunChunk.objects.bulk_create(
        RunChunk(run=run, index=i, units=[u.to_stored() for u in plan.units[start : start + size]])
        for i, start in enumerate(range(0, len(plan.units), size))
    )
    audit(project=project, actor=actor, action="run.create", target=str(run.pk), mode=mode)
    _enqueue(run, range(math.ceil(len(plan.units) / size)))
    return run


@transaction.atomic
def run_extend(*, run: Run, response_ids: list[int]) -> int:
    """Judge more responses in a run, with its judge, mode, versions and samples (a judge
    probe's rewrites, made once its originals were judged): their chunks are added and
    queued, and a finished run runs again. Returns the judgments added."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status != Run.Status.DONE:
        raise ApplicationError(f"This run is {run.get_status_display().lower()}, not done.")
    if run.endpoint is None:
        raise ApplicationError("The run's judge endpoint was deleted.")
    judged = {u["r"] for units in run.chunks.values_list("units", flat=True) for u in units}
    response_ids = [pk for pk in response_ids if pk not in judged]
    if not response_ids:
        raise ApplicationError("The run judges these responses already.")
    plan = plan_units(
        project=run.project, endpoint=run.endpoint, mode=run.mode, sources=[], prompt_ids=[],
        versions=run.versions, samples=run.samples, temperature=run.temperature,
        pair_plan=run.pair_plan, baseline_source=run.baseline_source,
        pairs_per_prompt=run.pairs_per_prompt, response_ids=response_ids,
    )  # fmt: skip
    size = chunk_size(run.mode, run.endpoint, len(plan.units))
    first = (run.chunks.order_by("-index").values_list("index", flat=True).first() or 0) + 1
    starts = range(0, len(plan.units), size)
    RunChunk.objects.bulk_create(
        RunChunk(run=run, index=first + i, units=[u.to_stored() for u in plan.units[s : s + size]])
        for i, s in enumerate(starts)
    )
    run.total += plan.judgments
    if run.finished_at is not None:  # the time it stood finished is not judging time
        run.paused_seconds += (timezone.now() - run.finished_at).total_seconds()
    run.status, run.finished_at = Run.Status.RUNNING, None
    run.save(update_fields=["total", "status", "finished_at", "paused_seconds"])
    _enqueue(run, [first + i for i in range(len(starts))])
    return plan.judgments


def _enqueue(run: Run, indexes: Iterable[int]) -> None:
    """Send the chunks' tasks once the transaction commits: a local judge's to the ``gpu``
    queue (``score_chunk_local``, routed by ``CELERY_TASK_ROUTES``), others to the default."""
    task = score_chunk_local if run.is_local else score_chunk
    indexes = list(indexes)
    transaction.on_commit(lambda: [task.apply_async((run.pk, i)) for i in indexes])


# --- run control --------------------------------------------------------------------------


@transaction.atomic
def run_pause(*, run: Run, actor) -> None:  # type: ignore[no-untyped-def]
    Run.objects.filter(pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).update(
        status=Run.Status.PAUSED, note="Paused by a person.", paused_at=timezone.now()
    )
    audit(project=run.project, actor=actor, action="run.pause", target=str(run.pk))


@transaction.atomic
def run_cancel(*, run: Run, actor) -> None:  # type: ignore[no-untyped-def]
    if (
        Run.objects.filter(pk=run.pk)
        .exclude(status__in=[Run.Status.DONE, Run.Status.CANCELLED])
        .update(status=Run.Status.CANCELLED, finished_at=timezone.now())
    ):
        _finished(run.pk)
    audit(project=run.project, actor=actor, action="run.cancel", target=str(run.pk))


@transaction.atomic
def run_resume(*, run: Run, actor, budget: float | None = None) -> None:  # type: ignore[no-untyped-def]
    """Queue every chunk not done: paused ones, and running ones whose lease ran out (their
    worker died). A raised budget lets a run paused at its budget go on."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status in (Run.Status.DONE, Run.Status.CANCELLED):
        raise ApplicationError(f"This run is {run.get_status_display().lower()}.")
    if budget is not None:
        if budget <= run.cost:
            raise ApplicationError(f"The new budget must be above the ${run.cost:.4f} spent.")
        run.budget = budget
    elif run.budget is not None and run.cost >= run.budget:
        raise ApplicationError("The run reached its budget: raise the budget to go on.")
    run.status, run.note = Run.Status.RUNNING, ""
    if run.paused_at is not None:  # the rate counts active time only
        run.paused_seconds += (timezone.now() - run.paused_at).total_seconds()
        run.paused_at = None
    run.save(update_fields=["status", "note", "budget", "paused_at", "paused_seconds"])
    stale = timezone.now() - chunk_lease()
    RunChunk.objects.filter(run=run, status=RunChunk.Status.RUNNING, claimed_at__lt=stale).update(
        status=RunChunk.Status.QUEUED
    )
    queued = RunChunk.objects.filter(run=run, status=RunChunk.Status.QUEUED)
    _enqueue(run, queued.values_list("index", flat=True))
    _refresh(run, finish=True)  # a run paused after its last chunk has nothing left to do
    audit(project=run.project, actor=actor, action="run.resume", target=str(run.pk))


@transaction.atomic
def run_retry_failed(*, run: Run, actor) -> int:  # type: ignore[no-untyped-def]
    """Judge again every unit whose judgment failed in this run (one new chunk)."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status not in (Run.Status.DONE, Run.Status.FAILED):
        raise ApplicationError("Retry failed judgments once the run has ended (or resume it).")
    failed = Judgment.objects.filter(
        pk__in=RunJudgment.objects.filter(run=run).values("judgment_id")
    ).exclude(error="")
    keys = set(failed.values_list("key", flat=True))
    if not keys:
        raise ApplicationError("No judgment of this run failed.")
    units = list(
        {
            u.identity: u
            for chunk in run.chunks.filter(retry=False)
            for u in map(Unit.from_stored, chunk.units)
            if keys & set(u.keys)
        }.values()
    )  # the failed rows are judged again and updated in place (see `_write`)
    index = (run.chunks.order_by("-index").values_list("index", flat=True).first() or 0) + 1
    RunChunk.objects.create(run=run, index=index, units=[u.to_stored() for u in units], retry=True)
    queued = RunChunk.objects.filter(run=run, status=RunChunk.Status.QUEUED).exclude(index=index)
    run.status, run.finished_at, run.note = Run.Status.RUNNING, None, ""
    run.save(update_fields=["status", "finished_at", "note"])
    _refresh(run)
    _enqueue(run, [index, *queued.values_list("index", flat=True)])
    audit(project=run.project, actor=actor, action="run.retry_failed", target=str(run.pk))
    return len(units)


# --- unattended recovery ------------------------------------------------------------------


def run_chunks_sweep(*, now: datetime | None = None) -> int:
    """Requeue every chunk whose lease ran out in a run that is still queued or running
    (its worker died: SIGKILL, out of memory, a lost machine), and close every run marked
    running whose chunks are all done (its worker died between the two writes). Paused,
    cancelled and finished runs are left as they are: *Resume* is for those.

    Called by every worker's sweeper (``scoring.recovery``), so any number may run
    at once: a chunk is requeued by an update guarded on the claim it found, which one
    sweeper wins, and a requeued chunk is claimed again like any other. A worker that was
    only slow loses its claim at that takeover and its judgments are unique by key, so
    nothing is written twice. Returns the number of chunks requeued."""
    now = now or timezone.now()
    expired = (
        RunChunk.objects.filter(
            status=RunChunk.Status.RUNNING,
            run__status__in=[Run.Status.QUEUED, Run.Status.RUNNING],
        )
        .filter(Q(claimed_at__lt=now - chunk_lease()) | Q(claimed_at__isnull=True))
        .select_related("run__project")
        .only("pk", "index", "attempts", "claimed_at", "run")
        .order_by("run_id", "index")
    )
    taken: dict[int, tuple[Run, list[int]]] = {}
    for chunk in expired:
        if RunChunk.objects.filter(
            pk=chunk.pk,
            status=RunChunk.Status.RUNNING,
            attempts=chunk.attempts,
            claimed_at=chunk.claimed_at,
        ).update(status=RunChunk.Status.QUEUED):
            taken.setdefault(chunk.run_id, (chunk.run, []))[1].append(chunk.index)
    for run, indexes in taken.values():
        logger.warning("run %s: chunks %s requeued, their lease ran out", run.pk, indexes)
        audit(project=run.project, actor=None, action="run.recover", target=str(run.pk),
              chunks=indexes)  # fmt: skip
        _enqueue(run, indexes)
    left = Run.objects.filter(status=Run.Status.RUNNING).exclude(
        chunks__status__in=[RunChunk.Status.QUEUED, RunChunk.Status.RUNNING]
    )
    for run in left:
        _refresh(run, finish=True)
    return sum(len(indexes) for _, indexes in taken.values())
