"""Embeddings of criteria and responses: the stored vectors, near-duplicate criteria for the
rubric editor, and diverse responses for the refine action.

Vectors are computed only in workers (the ``gpu`` queue: ``embed_missing``,
``vectors_for``); the web process reads stored vectors and compares them with numpy, and
asks a worker for the missing ones (``embeddings_request``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from annotation import services as annotation_services
from annotation.errors import ApplicationError
from annotation.models import Criterion, Project, Rubric, RubricDraft, RubricVersion
from annotation.selectors import version_dicts

from ..local.embeddings import (
    EmbeddingError,
    diverse_subset,
    model_key,
    near_duplicate_pairs,
)
from ..models.embeddings import Embedding, text_hash

logger = logging.getLogger(__name__)

MAX_PROJECT_CRITERIA = 20_000  # criteria of other rubrics compared (the most recent first)
MATCHES_SHOWN = 3  # other rubrics' matches shown per criterion
REFINE_RESPONSES = 8
REFINE_CANDIDATES = 200  # responses of one prompt considered for the diverse selection
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _key() -> str:
    return model_key(settings.EMBEDDING_MODEL_PATH)


# --- stored vectors -----------------------------------------------------------------------


def stored_vectors(texts: Iterable[str]) -> dict[str, np.ndarray]:
    """The stored vectors of ``texts`` under the configured model, by text hash; texts not
    embedded yet are absent."""
    hashes = sorted({text_hash(t) for t in texts})
    found: dict[str, np.ndarray] = {}
    for chunk in _chunks(hashes):
        rows = Embedding.objects.filter(model=_key(), text_hash__in=chunk)
        for row in rows.only("pk", "text_hash", "dim", "vector"):
            found[row.text_hash] = row.array()
    return found


def embed_missing(texts: Iterable[str]) -> int:
    """Embed and store the texts that have no vector yet; returns how many were embedded.
    Worker only (loads the model). Safe to run twice at once: the unique constraint keeps
    one vector per (model, text)."""
    from ..local.embeddings import embed

    unique = {text_hash(t): t for t in texts}
    have: set[str] = set()
    for chunk in _chunks(sorted(unique)):
        have.update(
            Embedding.objects.filter(model=_key(), text_hash__in=chunk).values_list(
                "text_hash", flat=True
            )
        )
    missing = [(h, t) for h, t in unique.items() if h not in have]
    for chunk in _chunks(missing, 256):
        vectors = embed(
            [t for _, t in chunk],
            path=settings.EMBEDDING_MODEL_PATH,
            device=settings.EMBEDDING_DEVICE,
        )
        Embedding.objects.bulk_create(
            [
                Embedding(model=_key(), text_hash=h, dim=v.shape[0], vector=Embedding.pack(v))
                for (h, _), v in zip(chunk, vectors, strict=True)
            ],
            ignore_conflicts=True,
        )
    return len(missing)


def vectors_for(texts: Sequence[str]) -> np.ndarray:
    """One stored vector per text (embedding the missing ones first). Worker only."""
    embed_missing(texts)
    stored = stored_vectors(texts)
    return np.stack([stored[text_hash(t)] for t in texts])


# --- near-duplicate criteria in the editor ------------------------------------------------


def working_criteria(*, rubric: Rubric, user) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """What the person's editor shows: their draft, or the current version."""
    draft = (
        RubricDraft.objects.filter(rubric=rubric, user=user).first()
        if user is not None and user.is_authenticated
        else None
    )
    return list(draft.criteria) if draft else version_dicts(rubric.current_version_id)


@dataclass(frozen=True)
class Other:
    """A criterion of another rubric of the project (its current version)."""

    key: str
    text: str
    points: float
    rubric_id: int
    rubric_title: str
    prompt_id: int | None
    prompt_external_id: str


def _other_criteria(project: Project, rubric: Rubric) -> tuple[list[Other], int]:
    """The current criteria of the project's other rubrics (archived ones aside), the most
    recently saved first, at most ``MAX_PROJECT_CRITERIA``; and how many there are in all."""
    versions = (
        Rubric.objects.filter(project=project, current_version__isnull=False)
        .exclude(pk=rubric.pk)
        .exclude(status=Rubric.Status.ARCHIVED)
        .values("current_version_id")
    )
    rows = Criterion.objects.filter(version_id__in=versions)
    total = rows.count()
    fields = (
        "key",
        "text",
        "points",
        "version__rubric_id",
        "version__rubric__title",
        "version__rubric__prompt_id",
        "version__rubric__prompt__external_id",
    )
    ordered = rows.order_by("-version_id", "position").values_list(*fields)
    others = [
        Other(str(k), text.strip(), points, rid, title, pid, ext or "")
        for k, text, points, rid, title, pid, ext in ordered[:MAX_PROJECT_CRITERIA]
    ]
    return others, total


@dataclass(frozen=True)
class WithinPair:
    a: dict[str, Any]
    b: dict[str, Any]
    cosine: float

    @property
    def opposite(self) -> bool:
        """One rewards what the other penalises: often one is the negation of the other."""
        return (float(self.a["points"]) > 0) != (float(self.b["points"]) > 0)


@dataclass(frozen=True)
class Match:
    other: Other
    cosine: float


@dataclass
class AcrossGroup:
    """A criterion of this rubric and its near duplicates in other rubrics."""

    criterion: dict[str, Any]
    matches: list[Match]  # the closest, at most MATCHES_SHOWN
    more: int = 0  # further matches not shown


@dataclass
class DuplicateReport:
    threshold: float
    criteria: int  # criteria of the rubric checked
    within: list[WithinPair] = field(default_factory=list)
    across: list[AcrossGroup] = field(default_factory=list)
    missing: int = 0  # texts with no stored vector yet (left out of the comparison)
    compared: int = 0  # other rubrics' criteria compared with (those with a vector)
    considered: int = 0  # other rubrics' criteria read (at most MAX_PROJECT_CRITERIA)
    total_other: int = 0  # other rubrics' criteria in all

    @property
    def pending(self) -> bool:
        return self.missing > 0


def rubric_texts(*, rubric: Rubric, user) -> list[str]:  # type: ignore[no-untyped-def]
    """Every text the rubric's near-duplicate report compares."""
    mine = [c["text"].strip() for c in working_criteria(rubric=rubric, user=user)]
    others, _ = _other_criteria(rubric.project, rubric)
    mine = [t for t in mine if t]
    return mine + [o.text for o in others]


def duplicate_report(*, project: Project, rubric: Rubric, user) -> DuplicateReport:  # type: ignore[no-untyped-def]
    """Near-duplicate criteria of the person's working rubric: pairs within it, and its
    criteria against the current criteria of the project's other rubrics, from stored
    vectors (texts not embedded yet are counted in ``missing`` and left out)."""
    threshold = settings.NEAR_DUPLICATE_THRESHOLD
    mine = [c for c in working_criteria(rubric=rubric, user=user) if c["text"].strip()]
    others, total = _other_criteria(project, rubric)
    texts = [c["text"].strip() for c in mine]
    other_texts = sorted({o.text for o in others})
    stored = stored_vectors(texts + other_texts)
    report = DuplicateReport(
        threshold=threshold, criteria=len(mine), considered=len(others), total_other=total
    )
    report.missing = len({t for t in texts + other_texts if text_hash(t) not in stored})

    ready = [i for i, t in enumerate(texts) if text_hash(t) in stored]
    if not ready:
        return report
    a = np.stack([stored[text_hash(texts[i])] for i in ready])
    for i, j, cosine in near_duplicate_pairs(a, threshold=threshold):
        report.within.append(WithinPair(mine[ready[i]], mine[ready[j]], cosine))

    known = [t for t in other_texts if text_hash(t) in stored]
    report.compared = sum(text_hash(o.text) in stored for o in others)
    if not known:
        return report
    by_text: dict[str, list[Other]] = {}
    for o in others:
        by_text.setdefault(o.text, []).append(o)
    b = np.stack([stored[text_hash(t)] for t in known])
    found: dict[int, list[Match]] = {}
    for i, j, cosine in near_duplicate_pairs(a, b, threshold=threshold):
        found.setdefault(i, []).extend(Match(o, cosine) for o in by_text[known[j]])
    for i in sorted(found, key=lambda i: ready[i]):
        matches = found[i]  # most similar first: near_duplicate_pairs sorts by cosine
        report.across.append(
            AcrossGroup(
                mine[ready[i]], matches[:MATCHES_SHOWN], max(len(matches) - MATCHES_SHOWN, 0)
            )
        )
    return report


def embeddings_request(*, rubric: Rubric, user) -> None:  # type: ignore[no-untyped-def]
    """Ask a worker on the ``gpu`` queue to embed the report's missing texts."""
    from ..tasks import embed_rubric_texts

    user_id = user.pk if user is not None and user.is_authenticated else None
    transaction.on_commit(lambda: embed_rubric_texts.apply_async((rubric.pk, user_id), queue="gpu"))


def rubric_texts_embed(*, rubric_id: int, user_id: int | None) -> int:
    """Worker side of ``embeddings_request``: embed what the report still misses."""
    rubric = Rubric.objects.select_related("project").filter(pk=rubric_id).first()
    if rubric is None:  # deleted since
        return 0
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return embed_missing(rubric_texts(rubric=rubric, user=user))


def _page_version(rubric: Rubric, base: int | None) -> RubricVersion | None:
    """The version the person's page showed (as annotation's drafts read ``base``)."""
    version = rubric.current_version
    if base is not None and (version is None or base != version.number):
        version = RubricVersion.objects.filter(rubric=rubric, number=base).first() or version
    return version


@transaction.atomic
def duplicate_merge(  # type: ignore[no-untyped-def]
    *, rubric: Rubric, user, keep: str, drop: str, base: int | None = None
) -> None:
    """Merge two near-duplicate criteria of the person's draft: keep ``keep`` and remove
    ``drop``, through the editor's own delete edit (so a stale page merges at save like any
    other edit). Both must still be in the draft, or nothing changes."""
    if not keep or not drop:
        raise ApplicationError("Choose the criterion to keep and the one to remove.")
    if keep == drop:
        raise ApplicationError("A criterion cannot be merged with itself.")
    draft = RubricDraft.objects.select_for_update().filter(rubric=rubric, user=user).first()
    if draft is not None:
        criteria = list(draft.criteria)
    else:
        version = _page_version(rubric, base)
        criteria = version_dicts(version.pk if version else None)
    keys = {c["key"] for c in criteria}
    if keep not in keys or drop not in keys:
        raise ApplicationError(
            "These two criteria are no longer both in your draft; nothing was changed."
        )
    annotation_services.draft_edit(
        rubric=rubric, user=user, op="delete", data={"key": drop, "base": base or ""}
    )


# --- diverse responses for refine ---------------------------------------------------------


def diverse_responses(
    responses: Sequence[tuple[int, str]], k: int = REFINE_RESPONSES
) -> tuple[list[tuple[int, str]], str]:
    """``k`` of the (id, content) responses, spread by embedding (in their original order),
    and how they were chosen: "all", "diverse", or "first" when the embedding model is not
    available in this worker. Worker only."""
    if len(responses) <= k:
        return list(responses), "all"
    try:
        vectors = vectors_for([content for _, content in responses])
    except (ImportError, EmbeddingError) as exc:
        logger.warning(
            "diverse responses: embeddings unavailable (%s); taking the first %d", exc, k
        )
        return list(responses[:k]), "first"
    return [responses[i] for i in sorted(diverse_subset(vectors, k))], "diverse"
