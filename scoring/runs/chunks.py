"""Running a chunk of a scoring run (the Celery task's work). Exactly-once by
construction: a chunk is claimed with a status-guarded update (a lease lets another worker
take over a chunk whose worker died); every judgment has a unique key, so a redelivered
chunk finds what was already written and adds nothing twice; a judgment whose key exists
and succeeded is reused by any later run (shown as reused, costing nothing). A run that
reached its budget is paused before its next chunk.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from annotation.errors import ApplicationError
from scoring.judges.models import JudgeEndpoint
from scoring.runs import local as local_runs
from scoring.runs.calls import _contexts, _judge_and_write, _worker_gateway
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
from scoring.runs.modes.base import Unit
from scoring.runs.planning import chunk_lease, is_local, judge_hash, reads_logprobs
from scoring.runs.recording import _fail, _refresh, _write

logger = logging.getLogger(__name__)


def chunk_run(run_id: int, index: int) -> None:
    """Claim chunk ``index`` of a run and judge what it still needs. Safe to repeat."""
    now = timezone.now()
    claimable = Q(status=RunChunk.Status.QUEUED) | Q(
        status=RunChunk.Status.RUNNING, claimed_at__lt=now - chunk_lease()
    )
    claimed = (
        RunChunk.objects.filter(run_id=run_id, index=index)
        .filter(claimable)
        .update(status=RunChunk.Status.RUNNING, claimed_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return
    run = Run.objects.select_related("endpoint", "project").get(pk=run_id)
    chunk = RunChunk.objects.get(run=run, index=index)
    mine = RunChunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts)  # while it is ours
    if run.status not in (Run.Status.QUEUED, Run.Status.RUNNING) or _over_budget(run):
        if run.status != Run.Status.CANCELLED:
            mine.update(status=RunChunk.Status.QUEUED)
        return
    Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    try:
        _process(run, chunk, mine)
    except ApplicationError as exc:
        mine.update(status=RunChunk.Status.QUEUED)  # ready for a resume once it is fixed
        _fail(run, exc.message)
        return
    except Exception as exc:
        logger.exception("scoring run %s, chunk %s", run.pk, index)
        mine.update(status=RunChunk.Status.QUEUED)
        _fail(run, f"Internal error: {exc}")
        raise
    if mine.update(status=RunChunk.Status.DONE):  # not if another worker took it over
        _refresh(run, finish=True)


def _over_budget(run: Run) -> bool:
    if run.budget is None or run.cost < run.budget:
        return False
    Run.objects.filter(pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).update(
        status=Run.Status.PAUSED,
        note=f"Paused: the budget of ${run.budget:.4f} is reached.",
        paused_at=timezone.now(),
    )
    return True


def _process(run: Run, chunk: RunChunk, mine: Any) -> None:
    units = [Unit.from_stored(u) for u in chunk.units]
    keys = [k for u in units for k in u.keys]
    existing = {j.key: j for j in Judgment.objects.filter(key__in=keys)}
    good = {k: j for k, j in existing.items() if not j.error}
    RunJudgment.objects.bulk_create(
        [RunJudgment(run=run, judgment=j, reused=j.created_by_run_id != run.pk) for j in good.values()],
        ignore_conflicts=True,
    )  # fmt: skip
    todo = [u for u in units if not all(k in good for k in u.keys)]
    if not todo:
        return
    if run.endpoint is None:
        raise ApplicationError("The run's judge endpoint was deleted.")
    if (
        judge_hash(run.endpoint, run.temperature) != run.judge_hash
        or run.is_local != is_local(run.endpoint)
        or run.reads_logprobs != reads_logprobs(run.endpoint)
    ):
        # Its answers would be stored under this run's keys, as if the old judge gave them.
        raise ApplicationError(
            f"The judge endpoint “{run.endpoint.name}” was changed since this run started "
            "(server, model, parameters or backend): start a new run to use it."
        )
    failed = {k: j for k, j in existing.items() if j.error}  # judged again, updated in place
    if run.is_local:
        _process_local(run, run.endpoint, todo, failed, mine)
        return
    loop, gateway = _worker_gateway(run.endpoint)
    held = loop.run_until_complete(
        _judge_and_write(
            gateway, run, todo, _contexts(todo), failed, mine, threshold=run.endpoint.threshold
        )
    )
    if held:  # written here, outside the event loop, on this connection
        _write(run, held, failed, mine)


def _process_local(
    run: Run,
    endpoint: JudgeEndpoint,
    units: list[Unit],
    failed: dict[str, Judgment],
    mine: Any,
) -> None:
    """Judge with this worker's local model; rows are written slice by slice."""
    judge = local_runs.load(endpoint)
    mine.update(claimed_at=timezone.now())  # loading a model can take a while: renew
    local_runs.judge_units(
        judge, run, units, _contexts(units), endpoint.threshold,
        lambda rows: _write(run, rows, failed, mine),
    )  # fmt: skip
