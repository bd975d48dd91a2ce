"""Recording what a run judged: storing a chunk's judgment rows and linking them to the
run (a failed judgment judged again is updated in place), recounting the run from its
judgments, and closing it once no chunk is left, or marking it failed with the reason.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Count, Field, Q, QuerySet, Sum
from django.utils import timezone

from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
from scoring.runs.signals import run_finished

USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "cached_tokens", "cost")
VERDICT_FIELDS = (
    "met", "probability", "rating", "winner", "detail", "explanation", "error", "latency",
)  # fmt: skip


def _write(run: Run, rows: list[dict[str, Any]], failed: dict[str, Judgment], mine: Any) -> None:
    """Store judgments and link them to the run. A key already judged well wins; a key
    whose earlier judgment failed is updated in place (its runs keep their link) with the
    billed usage of both attempts. Renews the chunk's claim."""
    if settings.SCORING_WRITE_THREAD:
        close_old_connections()  # the writer thread's connection may have gone stale
    retried = [row for row in rows if row["key"] in failed]
    for row in retried:
        before = failed[row["key"]]
        changes = {f: row.get(f, _default(f)) for f in VERDICT_FIELDS}
        changes.update({f: getattr(before, f) + row.get(f, 0) for f in USAGE_FIELDS})
        Judgment.objects.filter(pk=before.pk, error=before.error).update(**changes)
    Judgment.objects.bulk_create(
        [Judgment(created_by_run=run, **row) for row in rows if row["key"] not in failed],
        ignore_conflicts=True,
    )
    mine.update(claimed_at=timezone.now())
    made = Judgment.objects.filter(key__in=[row["key"] for row in rows]).only(
        "pk", "created_by_run_id"
    )
    RunJudgment.objects.bulk_create(
        [RunJudgment(run=run, judgment=j, reused=j.created_by_run_id != run.pk) for j in made],
        ignore_conflicts=True,
    )


def _default(name: str) -> Any:
    field = Judgment._meta.get_field(name)
    assert isinstance(field, Field)  # a column, not a relation
    return field.get_default()


def _fail(run: Run, message: str) -> None:
    if (
        Run.objects.filter(pk=run.pk)
        .exclude(status=Run.Status.CANCELLED)
        .update(status=Run.Status.FAILED, note=message, finished_at=timezone.now())
    ):
        _finished(run.pk)


def _finished(run_id: int) -> None:
    """Tell the rest of the studio once the transaction that ended the run commits."""
    transaction.on_commit(lambda: run_finished.send(sender=Run, run_id=run_id))


def _refresh(run: Run, *, finish: bool = False) -> None:
    """Recount the run from its judgments (so counts stay exact whatever was redelivered)
    and close it once no chunk is left.

    The run's row is locked before counting, so refreshes write in the order they counted:
    a chunk that counted before another chunk's rows were committed cannot write its
    smaller count after that chunk has written the full one and closed the run."""
    with transaction.atomic():
        list(Run.objects.select_for_update().filter(pk=run.pk).values_list("pk"))
        _recount(run, finish=finish)


def _recount(run: Run, *, finish: bool) -> None:
    links = RunJudgment.objects.filter(run=run)
    counts = links.aggregate(
        done=Count("pk", filter=Q(judgment__error="")),
        failed=Count("pk", filter=~Q(judgment__error="")),
        reused=Count("pk", filter=Q(reused=True)),
    )
    spent = Judgment.objects.filter(created_by_run=run).aggregate(
        calls=Sum("calls"),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        cached_tokens=Sum("cached_tokens"),
        cost=Sum("cost"),
    )
    changes: dict[str, Any] = {**counts, **{k: v or 0 for k, v in spent.items()}}
    Run.objects.filter(pk=run.pk).update(**changes)
    if finish and not run.chunks.exclude(status=RunChunk.Status.DONE).exists():
        ending: dict[str, Any] = {"status": Run.Status.DONE, "finished_at": timezone.now()}
        if counts["failed"] and not counts["done"]:
            ending.update(status=Run.Status.FAILED, note=_all_failed_note(links))
        if Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(**ending):
            _finished(run.pk)


def _all_failed_note(links: QuerySet[RunJudgment]) -> str:
    """Why a run in which no judgment succeeded failed: its most common reason."""
    reason = (
        links.values("judgment__error")
        .annotate(n=Count("pk"))
        .order_by("-n", "judgment__error")
        .values_list("judgment__error", flat=True)
        .first()
    )
    return f"Every judgment failed; the most common reason: {reason}"
