"""Review queues made from a pairwise run: each compared pair becomes an item whose
reference verdict is the judge's (both orders merged, per-criterion winners by criterion
key, each order's explanation), frozen into the item as a snapshot for annotation's review
services, which never import scoring."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, cast

from annotation.errors import ApplicationError
from annotation.prompts.models import Response
from annotation.reviews.models import ReviewQueue
from annotation.reviews.queues import ItemInput, review_queue_create
from annotation.rubrics.models import Rubric
from scoring.engine import pairwise
from scoring.runs.models import Judgment, Run, RunJudgment
from scoring.runs.modes.registry import mode_for


def _verdict(judgment: Judgment) -> pairwise.Verdict:
    """A successful pairwise judgment's winner (the run only queues those)."""
    if judgment.winner not in ("A", "B", "tie"):
        raise ApplicationError(f"Judgment {judgment.pk} has no pairwise verdict.")
    return cast(pairwise.Verdict, judgment.winner)


def _snapshot(
    run: Run, ab: Judgment, ba: Judgment, criteria: list[dict[str, Any]]
) -> dict[str, Any]:
    winner, consistent = pairwise.merge_orders(_verdict(ab), _verdict(ba))
    per_criterion: dict[str, str] = {}
    first = {int(k): v for k, v in (ab.detail.get("criteria") or {}).items()}
    second = {int(k): v for k, v in (ba.detail.get("criteria") or {}).items()}
    if first and set(first) == set(second):
        for cid, (merged, _) in pairwise.merge_criteria_orders(first, second).items():
            if 1 <= cid <= len(criteria):
                per_criterion[criteria[cid - 1]["key"]] = merged
    probability = None
    if ab.probability is not None and ba.probability is not None:
        probability = (ab.probability + 1 - ba.probability) / 2
    return {
        "winner": winner,
        "consistent": consistent,
        "probability": probability,
        "criteria": per_criterion,
        "orders": [
            {"order": "ab", "winner": ab.winner, "explanation": ab.explanation},
            {"order": "ba", "winner": ba.winner, "explanation": ba.explanation},
        ],
        "endpoint": run.endpoint.name if run.endpoint else "",
        "model": run.model,
        "template_version": run.template_version,
        "run": run.pk,
    }


def _version(criteria: list[dict[str, Any]], wide: set[int]) -> int | None:
    """The rubric version the reviewer is shown: the prompt's own rubric if the run used
    one, else the project-wide rubric's."""
    versions = [c.get("version") for c in criteria if c.get("version")]
    own = [v for v in versions if v not in wide]
    return (own or versions or [None])[0]


def run_pairs(run: Run) -> list[ItemInput]:
    """Every pair of the run judged in both orders without failure (the first sample)."""
    if not mode_for(run.mode).compares_pairs:
        raise ApplicationError("Review queues are made from pairwise runs.")
    units = [u for c in run.chunks.filter(retry=False).order_by("index") for u in c.units]
    keys = [u["k"] for u in units if u["s"] == 0]
    judged = {
        j.key: j
        for j in Judgment.objects.filter(
            key__in=keys, pk__in=RunJudgment.objects.filter(run=run).values("judgment_id"), error=""
        )
    }
    orders: dict[tuple[int, int], dict[str, Any]] = defaultdict(dict)
    for unit in units:
        if unit["s"] != 0 or unit["k"] not in judged:
            continue
        a, b = unit["pair"]
        orders[(a, b)][unit["order"]] = (judged[unit["k"]], unit["crit"])
    ids = {x for pair in orders for x in pair}
    prompts = dict(Response.objects.filter(pk__in=ids).values_list("pk", "prompt_id"))
    wide = set(
        Rubric.objects.filter(project=run.project, prompt__isnull=True).values_list(
            "versions__pk", flat=True
        )
    )
    items = []
    for (a, b), both in sorted(orders.items()):
        if "ab" not in both or "ba" not in both:
            continue
        (ab, criteria), (ba, _) = both["ab"], both["ba"]
        items.append(
            ItemInput(prompts[a], a, b, _snapshot(run, ab, ba, criteria), _version(criteria, wide))
        )
    if not items:
        raise ApplicationError("This run has no pair judged in both orders yet.")
    return items


def queue_from_run(*, run: Run, actor, **options: Any) -> ReviewQueue:  # type: ignore[no-untyped-def]
    """A review queue of the run's pairs (``options``: name, plan, sample_size, overlap, seed,
    lock_minutes, show_sources, as ``review_queue_create`` takes them)."""
    options.setdefault("name", f"Run #{run.pk} ({run.model})")
    return review_queue_create(
        project=run.project,
        actor=actor,
        origin=ReviewQueue.Origin.RUN,
        items=run_pairs(run),
        source_run=run.pk,
        judge_name=run.endpoint.name if run.endpoint else run.model,
        template_version=run.template_version,
        **options,
    )
