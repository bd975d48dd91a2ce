"""Agreement figures of a project's expert reviews: the judge against the reviewers (overall,
per rubric, judge endpoint, template version and criterion, and across rubric and template
versions), the judge against the final labels, and the reviewers among themselves.

Reads only (selector style): the caller passes a project it has already scoped by membership
and, optionally, one of its queues. The maths is ``scoring.engine.agreement``; this module
only gathers the labels. A few queries whatever the number of reviews: the reviewed items
with their queue and rubric, their reviews with the reviewer, and the criteria texts.

Labels are the item's "a", "b" and "tie" (the side a reviewer saw is already undone in
``PairwiseReview.winner``). A review whose item has no judge verdict is counted, not
compared; an undefined figure carries the reason the page shows for it.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef, Q

from annotation.projects.models import Project
from annotation.reviews.agreement_rows import judge_endpoint, template_version
from annotation.reviews.models import PairwiseReview, ReviewItem, ReviewQueue
from annotation.rubrics.models import Criterion
from scoring.engine.agreement import (
    AgreementSummary,
    ConfusionMatrix,
    agreement_summary,
    confusion_matrix,
)

LABELS = ("a", "b", "tie")
NO_RUBRIC = "No rubric recorded"


@dataclass(frozen=True)
class Figure:
    """A statistic, or None with the reason it is undefined (the page's "—" title)."""

    value: float | None
    why: str = ""


@dataclass
class Comparison:
    """The judge's verdicts (matrix rows) against human labels (columns) over one group."""

    name: str
    matrix: ConfusionMatrix
    n_items: int
    against: str = "the reviewers"
    detail: str = ""

    @property
    def n(self) -> int:
        return self.matrix.total

    @property
    def accuracy(self) -> Figure:
        if not self.n:
            return Figure(None, f"Nothing to compare: no verdict of the judge and {self.against}.")
        return Figure(self.matrix.accuracy)

    @property
    def kappa(self) -> Figure:
        kappa = self.matrix.kappa
        if kappa is not None:
            return Figure(kappa)
        if not self.n:
            return self.accuracy
        label = next(lab for lab, row in self.matrix.rows() if sum(row))
        return Figure(
            None,
            f"Undefined: the judge and {self.against} all said “{label}” ({self.n} of "
            f"{self.n}), so chance alone explains the agreement.",
        )

    def rows(self) -> list[tuple[str, tuple[int, ...], int]]:
        """(judge label, counts against each human label, row total) for the template."""
        return [(label, counts, sum(counts)) for label, counts in self.matrix.rows()]

    @property
    def column_totals(self) -> list[int]:
        return [sum(column) for column in zip(*self.matrix.counts, strict=True)]


class _Pairs:
    """(judge, human) label pairs of one group while they are gathered."""

    def __init__(self) -> None:
        self.judge: list[str] = []
        self.human: list[str] = []
        self.items: set[int] = set()

    def add(self, judge: str, human: str, item_id: int) -> None:
        self.judge.append(judge)
        self.human.append(human)
        self.items.add(item_id)

    def comparison(self, name: str, **options: str) -> Comparison:
        matrix = confusion_matrix(self.judge, self.human, LABELS)
        return Comparison(name, matrix, len(self.items), **options)


@dataclass(frozen=True)
class PairRow:
    rater_a: str
    rater_b: str
    n_items: int
    agreement: Figure
    kappa: Figure


@dataclass
class QueueAgreement:
    """The reviewers of one queue among themselves."""

    queue: ReviewQueue
    summary: AgreementSummary[str]
    alpha: Figure
    agreement: Figure
    pairs: list[PairRow]


@dataclass
class AgreementReport:
    queue: ReviewQueue | None  # the filter; None = every queue of the project
    n_reviews: int
    n_items: int  # items with a review or a final label
    n_reviewers: int
    unjudged: int  # reviews of items without a judge verdict: counted, not compared
    overall: Comparison
    final: Comparison
    by_rubric: list[Comparison]
    by_endpoint: list[Comparison]
    by_template: list[Comparison]
    by_criterion: list[Comparison]
    by_rubric_version: list[Comparison]
    humans: list[QueueAgreement]
    chart: dict[str, Any] = field(default_factory=dict)


# --- reading --------------------------------------------------------------------------------


def _judge_winner(item: ReviewItem) -> str | None:
    winner = (item.judge or {}).get("winner")
    return winner if winner in LABELS else None


def _key(raw: object) -> str:
    """A criterion key as written by ``uuid`` (keys arrive as JSON strings)."""
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        return str(raw)


def reviewed_items(*, project: Project, queue: ReviewQueue | None = None) -> list[ReviewItem]:
    """The items with a review or a final label, with their queue and their rubric version
    with the rubric (only the fields the report reads)."""
    items = ReviewItem.objects.filter(queue__project=project)
    if queue is not None:
        items = items.filter(queue=queue)
    return list(
        items.filter(Q(Exists(PairwiseReview.objects.filter(item=OuterRef("pk")))) | ~Q(final=""))
        .select_related("queue", "rubric_version__rubric")
        .only(
            "queue_id",
            "position",
            "judge",
            "final",
            "rubric_version_id",
            "queue__name",
            "queue__origin",
            "queue__judge_name",
            "queue__template_version",
            "rubric_version__rubric_id",
            "rubric_version__number",
            "rubric_version__rubric__title",
        )  # fmt: skip
        .order_by("queue_id", "position")
    )


@dataclass(frozen=True)
class ReviewLabel:
    """What the report reads of a committed review."""

    reviewer: str  # the username
    winner: str
    criteria: dict[str, str]


def reviews_by_item(
    *, project: Project, queue: ReviewQueue | None = None
) -> dict[int, list[ReviewLabel]]:
    """The committed reviews of ``reviewed_items``, by item, in the order they were
    committed: one query of plain values (a large project has thousands of reviews, each
    a model instance with its reviewer's otherwise)."""
    reviews = PairwiseReview.objects.filter(item__queue__project=project)
    if queue is not None:
        reviews = reviews.filter(item__queue=queue)
    by_item: dict[int, list[ReviewLabel]] = defaultdict(list)
    rows = reviews.order_by("committed_at", "id").values_list(
        "item_id", "reviewer__username", "winner", "criteria"
    )
    for item_id, reviewer, winner, criteria in rows:
        by_item[item_id].append(ReviewLabel(reviewer, winner, criteria or {}))
    return by_item


def _criterion_texts(items: Iterable[ReviewItem]) -> dict[tuple[int, str], str]:
    """(rubric version id, criterion key) → the criterion's text in that version."""
    versions = {item.rubric_version_id for item in items if item.rubric_version_id}
    rows = Criterion.objects.filter(version_id__in=versions).values_list(
        "version_id", "key", "text"
    )
    return {(version, str(key)): text for version, key, text in rows}


# --- the report -----------------------------------------------------------------------------


def agreement_report(*, project: Project, queue: ReviewQueue | None = None) -> AgreementReport:
    items = reviewed_items(project=project, queue=queue)
    reviews_of = reviews_by_item(project=project, queue=queue)
    texts = _criterion_texts(items)
    overall, final = _Pairs(), _Pairs()
    groups: dict[str, dict[Any, _Pairs]] = {
        name: defaultdict(_Pairs) for name in ("rubric", "endpoint", "template", "version")
    }
    criteria: dict[str, _Pairs] = defaultdict(_Pairs)
    criterion_names: dict[str, tuple[tuple[int, int], str, str]] = {}
    rubric_titles: dict[int | None, str] = {None: NO_RUBRIC}
    n_reviews = unjudged = 0
    reviewers: set[str] = set()
    for item in items:
        judge = _judge_winner(item)
        version = item.rubric_version
        rubric_id = version.rubric_id if version else None
        if version is not None:
            rubric_titles[rubric_id] = version.rubric.title
        if judge is not None and item.final in LABELS:
            final.add(judge, item.final, item.pk)
        for review in reviews_of.get(item.pk, []):
            n_reviews += 1
            reviewers.add(review.reviewer)
            if judge is None:
                unjudged += 1
                continue
            overall.add(judge, review.winner, item.pk)
            groups["rubric"][rubric_id].add(judge, review.winner, item.pk)
            groups["endpoint"][judge_endpoint(item)].add(judge, review.winner, item.pk)
            groups["template"][template_version(item)].add(judge, review.winner, item.pk)
            if version is not None:
                groups["version"][(rubric_id, version.number)].add(judge, review.winner, item.pk)
            judge_criteria = {_key(k): v for k, v in (item.judge.get("criteria") or {}).items()}
            for raw_key, mark in (review.criteria or {}).items():
                key = _key(raw_key)
                if judge_criteria.get(key) not in LABELS or mark not in LABELS:
                    continue
                criteria[key].add(judge_criteria[key], mark, item.pk)
                _name_criterion(criterion_names, key, item, texts)

    by_rubric = sorted(
        (pairs.comparison(rubric_titles[rid]) for rid, pairs in groups["rubric"].items()),
        key=lambda c: (c.name == NO_RUBRIC, c.name.lower()),
    )
    by_version = [
        groups["version"][k].comparison(f"{rubric_titles[k[0]]} v{k[1]}")
        for k in sorted(groups["version"], key=lambda k: (rubric_titles[k[0]].lower(), k))
    ]
    by_template = [
        groups["template"][name].comparison(name)
        for name in sorted(groups["template"], key=_natural)
    ]
    by_criterion = sorted(
        (
            pairs.comparison(criterion_names[key][1], detail=criterion_names[key][2])
            for key, pairs in criteria.items()
        ),
        key=lambda c: (c.detail.lower(), c.name.lower()),
    )
    return AgreementReport(
        queue=queue,
        n_reviews=n_reviews,
        n_items=len(items),
        n_reviewers=len(reviewers),
        unjudged=unjudged,
        overall=overall.comparison("Every review"),
        final=final.comparison("Final labels", against="the final labels"),
        by_rubric=by_rubric,
        by_endpoint=[
            groups["endpoint"][name].comparison(name)
            for name in sorted(groups["endpoint"], key=str.lower)
        ],
        by_template=by_template,
        by_criterion=by_criterion,
        by_rubric_version=by_version,
        humans=_humans(items, reviews_of),
        chart=_chart(groups["version"], rubric_titles, by_template),
    )


def _name_criterion(
    names: dict[str, tuple[tuple[int, int], str, str]],
    key: str,
    item: ReviewItem,
    texts: dict[tuple[int, str], str],
) -> None:
    """Name the criterion by its text in the newest rubric version it was reviewed under."""
    version = item.rubric_version
    text = texts.get((version.pk, key)) if version is not None else None
    if version is None or text is None:
        names.setdefault(key, ((0, 0), f"Criterion {key[:8]}…", "not in the item's rubric"))
        return
    rank = (version.rubric_id, version.number)
    if key not in names or names[key][0] < rank:
        names[key] = (rank, text, f"{version.rubric.title} v{version.number}")


def _natural(text: str) -> list[Any]:
    """Sort key putting "v2" before "v10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _humans(
    items: list[ReviewItem], reviews_of: dict[int, list[ReviewLabel]]
) -> list[QueueAgreement]:
    """Per queue with reviews: Krippendorff's α, pooled percent agreement and the κ of each
    pair of reviewers on the items both reviewed."""
    by_queue: dict[int, tuple[ReviewQueue, dict[str, dict[int, str]]]] = {}
    for item in items:
        for review in reviews_of.get(item.pk, []):
            _, ratings = by_queue.setdefault(item.queue_id, (item.queue, {}))
            ratings.setdefault(review.reviewer, {})[item.pk] = review.winner
    result = []
    for queue, ratings in by_queue.values():
        ordered = {name: ratings[name] for name in sorted(ratings, key=str.lower)}
        summary = agreement_summary(ordered, LABELS)
        result.append(
            QueueAgreement(
                queue=queue,
                summary=summary,
                alpha=_alpha(summary, ordered),
                agreement=Figure(
                    summary.percent_agreement,
                    "" if summary.percent_agreement is not None else _NO_PAIRABLE,
                ),
                pairs=[_pair_row(p, ordered) for p in summary.pairs],
            )
        )
    return result


_NO_PAIRABLE = "No item has two reviews yet: agreement needs items reviewed by two people."


def _alpha(summary: AgreementSummary[str], ratings: dict[str, dict[int, str]]) -> Figure:
    if summary.alpha is not None:
        return Figure(summary.alpha)
    if not summary.n_pairable_items:
        return Figure(None, _NO_PAIRABLE)
    counts: dict[int, list[str]] = defaultdict(list)
    for by_item in ratings.values():
        for item_id, label in by_item.items():
            counts[item_id].append(label)
    label = next(labels[0] for labels in counts.values() if len(labels) > 1)
    return Figure(
        None,
        f"Undefined: every review of the {summary.n_pairable_items} items reviewed twice or "
        f"more said “{label}”, so no disagreement is expected by chance.",
    )


def _pair_row(pair: Any, ratings: dict[str, dict[int, str]]) -> PairRow:
    if not pair.n_items:
        why = "These two reviewers have no item in common."
        return PairRow(pair.rater_a, pair.rater_b, 0, Figure(None, why), Figure(None, why))
    kappa = Figure(pair.kappa)
    if pair.kappa is None:
        common = set(ratings[pair.rater_a]) & set(ratings[pair.rater_b])
        label = ratings[pair.rater_a][next(iter(common))]
        kappa = Figure(
            None,
            f"Undefined: both said “{label}” on all {pair.n_items} common items, so chance "
            "alone explains the agreement.",
        )
    return PairRow(pair.rater_a, pair.rater_b, pair.n_items, Figure(pair.percent_agreement), kappa)


def _chart(
    versions: dict[tuple[int | None, int], _Pairs],
    titles: dict[int | None, str],
    by_template: list[Comparison],
) -> dict[str, Any]:
    """What ``static/js/agreement-chart.js`` draws: accuracy and κ per rubric across its
    version numbers, and across template versions, with n for the tooltips (None = no
    figure: a gap in the line)."""
    numbers = sorted({number for _, number in versions})
    series = []
    for rubric_id in sorted({rid for rid, _ in versions}, key=lambda r: titles[r].lower()):
        points = [
            versions[(rubric_id, n)].comparison("") if (rubric_id, n) in versions else None
            for n in numbers
        ]
        series.append(
            {
                "rubric": titles[rubric_id],
                "accuracy": [p.accuracy.value if p else None for p in points],
                "kappa": [p.kappa.value if p else None for p in points],
                "n": [p.n if p else 0 for p in points],
            }
        )
    return {
        "versions": {"labels": [f"v{n}" for n in numbers], "series": series},
        "templates": {
            "labels": [c.name for c in by_template],
            "accuracy": [c.accuracy.value for c in by_template],
            "kappa": [c.kappa.value for c in by_template],
            "n": [c.n for c in by_template],
        },
    }


def reference_name(queues: list[ReviewQueue]) -> str:
    """What the reviews are compared with: the judge (queues made from a pairwise run),
    the dataset's label (queues made from imported preference pairs), or either."""
    origins = {q.origin for q in queues}
    if origins == {ReviewQueue.Origin.LABELS}:
        return "dataset label"
    if ReviewQueue.Origin.LABELS in origins:
        return "reference (judge or dataset label)"
    return "judge"
