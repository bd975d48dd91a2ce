"""The prompts an export takes and the rubric each is scored by, as rows carry them.

Prompts are read in id order, ``PROMPT_BATCH`` at a time, with their rubrics and criteria
fetched per batch (a constant number of queries per batch, memory bounded by the batch),
each with its split (``options.split_of`` on the prompt's external id) and the rubric
version(s) it was made from: the approved rubric versions (or the latest, by option), a
prompt's own rubric and the project-wide ones; duplicates and excluded prompts are dropped.
Also here: the rubric as RL rows write it (items, JSON, RaR weights' whole-number check)
and the prompt's metadata as one JSON object."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from annotation.prompts.models import Prompt, Response, last_user_message
from annotation.rubrics.models import Criterion, Rubric
from scoring.datasets.kinds.base import Notes, _is_whole, split_of

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions

PROMPT_BATCH = 1000

# What rows read of a criterion, fetched as plain values: a model instance per criterion
# (15 a prompt) cost more than everything else the RL kinds do with it. The tags come as
# their JSON text, decoded once per distinct text (a project's criteria share a few tag sets).
_CRITERION_FIELDS = ("version_id", "position", "key", "text", "points", "category", "kind")
# What rows read of a prompt, fetched as plain values (``PromptRow``).
_PROMPT_FIELDS = ("pk", "external_id", "messages", "reference_answer", "metadata", "search_text")


@dataclass(frozen=True, slots=True)
class CriterionRow:
    """A criterion as the export reads it (the fields of ``Criterion`` that rows use)."""

    version_id: int
    position: int
    key: uuid.UUID
    text: str
    points: float
    category: str
    kind: str
    tags: list[Any]


def _criterion_rows(criteria: QuerySet[Criterion]) -> Iterator[CriterionRow]:
    decoded: dict[str, list[Any]] = {}
    rows = criteria.annotate(tags_text=Cast("tags", output_field=TextField()))
    for version_id, position, key, text, points, category, kind, tags_text in rows.values_list(
        *_CRITERION_FIELDS, "tags_text"
    ):
        tags = decoded.get(tags_text)
        if tags is None:
            tags = decoded[tags_text] = json.loads(tags_text) if tags_text else []
        # A fresh list per criterion: a row may keep it, and no row changes another's.
        yield CriterionRow(version_id, position, key, text, points, category, kind, list(tags))


@dataclass(frozen=True, slots=True)
class PromptRow:
    """A prompt as the export reads it (the fields of ``Prompt`` that rows use)."""

    pk: int
    external_id: str
    messages: list[dict[str, Any]]
    reference_answer: str
    metadata: dict[str, Any]
    search_text: str

    @property
    def last_user_message(self) -> str:
        return last_user_message(self.messages)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _messages(prompt: PromptRow) -> list[dict[str, str]]:
    return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
            for m in prompt.messages]  # fmt: skip


@dataclass
class PromptRubric:
    prompt: PromptRow
    split: str
    criteria: list[CriterionRow]  # project-wide first, then the prompt's own, in order
    version_ids: list[int]
    # The source rubric items' unknown fields, aligned with ``criteria`` (see ``_item_extras``).
    item_extras: list[dict[str, Any]] | None = None

    @cached_property
    def messages(self) -> list[dict[str, str]]:
        """The conversation as rows carry it (one list, shared by the prompt's rows)."""
        return _messages(self.prompt)


def _day(value: str, end: bool) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApplicationError(f"“{value}” is not a date (YYYY-MM-DD).") from None
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min))


def _prompts(project: Project, options: ExportOptions) -> QuerySet[Prompt]:
    prompts = Prompt.objects.filter(project=project)
    since, until = _day(options.since, False), _day(options.until, True)
    if since:
        prompts = prompts.filter(created_at__gte=since)
    if until:
        prompts = prompts.filter(created_at__lte=until)
    return prompts.order_by("pk")


def _version_field(options: ExportOptions) -> str:
    return "approved_version_id" if options.versions == "approved" else "current_version_id"


def _wide_versions(project: Project, options: ExportOptions) -> list[int]:
    field = _version_field(options)
    rubrics = Rubric.objects.filter(project=project, prompt__isnull=True).exclude(
        status=Rubric.Status.ARCHIVED
    )
    return [v for v in rubrics.order_by("pk").values_list(field, flat=True) if v]


def prompt_rubrics(
    project: Project, options: ExportOptions, *, need_rubric: bool = True
) -> Iterator[PromptRubric]:
    """Each kept prompt with its effective rubric, in id order, batch by batch.

    ``need_rubric=False`` (kinds whose rows come from responses and labels, not from the
    rubric): prompts without a rubric are kept too, and the criteria are not read (``criteria``
    is empty) unless a tag filter needs them; ``version_ids`` are complete either way."""
    excluded = {_norm(x) for x in options.exclude if x.strip()}
    field = _version_field(options)
    wide = _wide_versions(project, options)
    read_criteria = need_rubric or bool(options.tags)
    wide_criteria = (
        list(
            _criterion_rows(
                Criterion.objects.filter(version_id__in=wide).order_by("version_id", "position")
            )
        )
        if read_criteria
        else []
    )
    wide_criteria.sort(key=lambda c: (wide.index(c.version_id), c.position))
    seen: set[bytes] = set()
    last = 0
    base = _prompts(project, options).values_list(*_PROMPT_FIELDS)
    while True:
        batch = [PromptRow(*values) for values in base.filter(pk__gt=last)[:PROMPT_BATCH]]
        if not batch:
            return
        last = batch[-1].pk
        own = dict(
            Rubric.objects.filter(prompt__in=[p.pk for p in batch])
            .exclude(status=Rubric.Status.ARCHIVED)
            .values_list("prompt_id", field)
        )
        by_version: dict[int, list[CriterionRow]] = defaultdict(list)
        imported: dict[int, list[str]] = {}
        if read_criteria:
            imported = _imported_keys([p for p in batch if _has_item_extras(p)])
            for c in _criterion_rows(
                Criterion.objects.filter(version_id__in=[v for v in own.values() if v]).order_by(
                    "position"
                )
            ):
                by_version[c.version_id].append(c)
        for prompt in batch:
            identity = hashlib.sha256(json.dumps(prompt.messages, sort_keys=True).encode()).digest()
            if identity in seen:
                continue  # a duplicate prompt: the first one stands
            if excluded and (
                _norm(prompt.external_id) in excluded
                or _norm(prompt.last_user_message) in excluded
                or _norm(prompt.search_text) in excluded
            ):
                continue
            version = own.get(prompt.pk)
            criteria = (
                [*wide_criteria, *by_version.get(version, [])] if version else list(wide_criteria)
            )
            versions = [*wide, *([version] if version else [])]
            if need_rubric and not criteria:
                continue
            if options.tags and not _has_tags(prompt, criteria, set(options.tags)):
                continue
            seen.add(identity)
            yield PromptRubric(
                prompt,
                split_of(prompt.external_id, options.ratios),
                criteria if need_rubric else [],
                versions,
                _item_extras(prompt, criteria, imported.get(prompt.pk)) if need_rubric else None,
            )


def _has_item_extras(prompt: PromptRow) -> bool:
    return isinstance((prompt.metadata or {}).get(RUBRIC_ITEMS_KEY), list)


def _imported_keys(prompts: list[PromptRow]) -> dict[int, list[str]]:
    """For each prompt, the criterion keys of its rubric's first (imported) version, in
    order: the importer aligned ``metadata["rubric_items"]`` with that list (one query)."""
    if not prompts:
        return {}
    keys: dict[int, list[str]] = defaultdict(list)
    rows = (
        Criterion.objects.filter(
            version__rubric__prompt__in=[p.pk for p in prompts], version__number=1
        )
        .order_by("version__rubric__prompt_id", "position")
        .values_list("version__rubric__prompt_id", "key")
    )
    for prompt_id, key in rows:
        keys[prompt_id].append(str(key))
    return keys


def _item_extras(
    prompt: PromptRow, criteria: list[CriterionRow], imported: list[str] | None
) -> list[dict[str, Any]] | None:
    """The imported rubric items' unknown fields (ResearchQA ``citation_metadata``,
    HealthBench item ids…) re-aligned with the exported criteria through the criterion keys,
    which stay the same across versions: an edited, moved or deleted criterion keeps (or
    drops) its own fields, a new one has none. None when the source items had none."""
    items = (prompt.metadata or {}).get(RUBRIC_ITEMS_KEY)
    if not isinstance(items, list) or not imported or len(items) != len(imported):
        return None
    by_key = dict(zip(imported, items, strict=True))
    aligned = [by_key.get(str(c.key)) or {} for c in criteria]
    return aligned if any(aligned) else None


def _has_tags(prompt: PromptRow, criteria: list[CriterionRow], wanted: set[str]) -> bool:
    tags = {t for c in criteria for t in c.tags}
    tags |= set(prompt.metadata.get("example_tags") or []) | set(prompt.metadata.get("tags") or [])
    return bool(tags & wanted)


def prompt_count(project: Project, options: ExportOptions) -> int:
    """An upper bound of the rows of a kind with a row per prompt, for progress."""
    return _prompts(project, options).count()


def _first_fractional(project: Project, options: ExportOptions) -> float | None:
    """A point value that is not a whole number among the criteria of the rubric versions
    the export draws from (the approved or latest versions of the project's rubrics that
    are not archived, before any filter), or None when all are whole. One query."""
    field = _version_field(options)
    versions = (
        Rubric.objects.filter(project=project)
        .exclude(status=Rubric.Status.ARCHIVED)
        .exclude(**{f"{field}__isnull": True})
        .values(field)
    )
    values = (
        Criterion.objects.filter(version_id__in=versions)
        .order_by()
        .values_list("points", flat=True)
        .distinct()
    )
    return min((v for v in values if not _is_whole(v)), default=None)


def _rubric_items(criteria: list[CriterionRow], notes: Notes) -> list[dict[str, Any]]:
    """The HealthBench / verl rubric items; the text exactly as stored."""
    number = notes.numbers.__getitem__
    return [{"criterion": c.text, "points": number(c.points), "tags": [str(t) for t in c.tags]}
            for c in criteria]  # fmt: skip


def _rubric_json(criteria: list[CriterionRow], notes: Notes) -> str:
    number = notes.numbers.__getitem__
    return json.dumps(
        [{"key": str(c.key), "text": c.text, "points": number(c.points), "category": c.category,
          "kind": c.kind, "tags": c.tags} for c in criteria],
        ensure_ascii=False, sort_keys=True, separators=(",", ":"),
    )  # fmt: skip


def _metadata_json(pr: PromptRubric) -> str:
    """The prompt's metadata (the fields of its source record that the importer did not
    map: HealthBench ``example_tags``, ResearchQA ``citation_metadata``…) as one JSON
    object, keys sorted, so that a Parquet column of fixed type can carry any of them.
    ``rubric_items`` is aligned with the exported rubric (absent when no item has fields)."""
    metadata = dict(pr.prompt.metadata or {})
    metadata.pop(RUBRIC_ITEMS_KEY, None)
    if pr.item_extras is not None:
        metadata[RUBRIC_ITEMS_KEY] = pr.item_extras
    return json.dumps(
        metadata, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def _in_batch(field: str, batch: list[PromptRubric]) -> Q:
    """The id range of a batch of prompts (read in id order): one cheap condition instead of
    a thousand ids; rows of prompts the batch left out are skipped by the caller."""
    return Q(**{f"{field}__gte": batch[0].prompt.pk, f"{field}__lte": batch[-1].prompt.pk})


def responses_of(batch: list[PromptRubric], also: set[int]) -> dict[int, tuple[str, str]]:
    """(source, content) of the batch's responses by id, read by the prompts' id range
    (an index range, not a join per label), plus any of ``also`` not among them."""
    out = {pk: (source, content) for pk, source, content in Response.objects.filter(
        _in_batch("prompt_id", batch)).values_list("pk", "source", "content")}  # fmt: skip
    missing = also - out.keys()
    if missing:
        out.update((pk, (source, content)) for pk, source, content in Response.objects.filter(
            pk__in=missing).values_list("pk", "source", "content"))  # fmt: skip
    return out
