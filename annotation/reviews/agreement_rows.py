"""The CSV of a project's expert reviews: one row per committed review, with its queue,
pair, responses, rubric version, the judge's verdict, the reviewer's decision and flags, and
the pair's final label; and how a reviewed pair names its judge endpoint and template
version (the columns of that CSV and the groups of the agreement page).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from annotation.projects.models import Project
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue

UNNAMED_JUDGE = "Unnamed judge"
NO_TEMPLATE = "No template version"


def judge_endpoint(item: ReviewItem) -> str:
    return str(item.judge.get("endpoint") or item.queue.judge_name or UNNAMED_JUDGE)


def template_version(item: ReviewItem) -> str:
    return str(item.judge.get("template_version") or item.queue.template_version or NO_TEMPLATE)


# --- the CSV --------------------------------------------------------------------------------

CSV_HEADER = (
    "queue_id", "queue", "item_id", "item_position", "prompt_external_id",
    "response_a_id", "response_a_source", "response_b_id", "response_b_source",
    "rubric_id", "rubric_version", "judge_endpoint", "template_version",
    "judge_winner", "judge_consistent", "judge_probability",
    "reviewer", "human_winner", "confidence", "seconds", "judge_wrong", "rubric_problem",
    "final", "final_source",
)  # fmt: skip


def review_rows(*, project: Project, queue: ReviewQueue | None = None) -> Iterator[tuple[Any, ...]]:
    """One row per committed review (in ``CSV_HEADER``'s order), by queue, item and time.
    One query, read in chunks; the conversation and response texts are not loaded."""
    reviews = PairwiseReview.objects.filter(item__queue__project=project)
    if queue is not None:
        reviews = reviews.filter(item__queue=queue)
    reviews = (
        reviews.select_related(
            "reviewer", "item__queue", "item__prompt", "item__response_a", "item__response_b",
            "item__rubric_version",
        )
        .defer(
            "rationale", "item__prompt__messages", "item__prompt__search_text",
            "item__prompt__reference_answer", "item__prompt__metadata",
            "item__response_a__content", "item__response_a__metadata",
            "item__response_b__content", "item__response_b__metadata",
        )
        .order_by("item__queue_id", "item__position", "committed_at", "id")
    )  # fmt: skip
    for review in reviews.iterator(chunk_size=2000):
        item = review.item
        judge = item.judge or {}
        version = item.rubric_version
        yield (
            item.queue_id, item.queue.name, item.pk, item.position, item.prompt.external_id,
            item.response_a_id, item.response_a.source, item.response_b_id, item.response_b.source,
            version.rubric_id if version else None, version.number if version else None,
            judge_endpoint(item), template_version(item),
            judge.get("winner"), judge.get("consistent"), judge.get("probability"),
            review.reviewer.username, review.winner, review.confidence, review.seconds,
            review.judge_wrong, review.rubric_problem, item.final, item.final_source,
        )  # fmt: skip
