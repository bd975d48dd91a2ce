"""The rows of each export kind, streamed from the database, with their pyarrow schemas.

Prompts are read in id order, ``PROMPT_BATCH`` at a time, with their rubrics and criteria
fetched per batch (a constant number of queries per batch, memory bounded by the batch);
judgments are read run by run, a few chunks per query (a chunk holds what each judge was
shown; the database expands its units and joins each to its judgment and response), on
PostgreSQL by a reader thread a few batches ahead (``readahead``).
Every row carries its split (``options.split_of`` on the prompt's external id) and the
rubric version(s) it was made from.

What goes in: the approved rubric versions (or the latest, by option) — a prompt's own
rubric and the project-wide ones, as runs use them; prompts without one are left out.
Prompts whose messages duplicate an earlier prompt's are dropped, and so are those on the
exclusion list (external ids, or texts matched against the last user message and the whole
conversation, case and spacing ignored).

What consumers need (``prepare`` decides it and ``Notes`` tells the card): criterion text
exactly as stored; points as integers when every criterion the export draws from has whole
points, else floats throughout; verl rows repeat ``prompt`` and ``reward_model`` inside
``extra_info``, where rubric rewards read them; the prompt's metadata (its source record's
other fields) in every RL row; preference pairs one row per (prompt, chosen text, rejected
text), and a ``margin`` column only when asked for, never null.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cached_property
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts.importers.parsers import RUBRIC_ITEMS_KEY
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.reviews.models import PairwiseReview, ReviewItem
from annotation.rubrics.models import Criterion, Rubric
from scoring.datasets.options import ExportOptions, split_of
from scoring.datasets.readahead import can_read_ahead, read_ahead
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

PROMPT_BATCH = 1000
Row = tuple[str, dict[str, Any]]  # (split, row)


# --- schemas ------------------------------------------------------------------------------


def schema(
    kind: str, conversational: bool = True, *, whole_points: bool = True, margins: bool = False
) -> Any:
    """The pyarrow schema of ``kind``'s rows (preference pairs: messages or plain text).

    ``whole_points``: rubric points (RaR weights) are int64, as they are when every
    criterion the export draws from has whole points (``Notes.whole_points``), else float64.
    ``margins``: preference pairs carry a non-null ``margin`` column (``ExportOptions``)."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    messages = pa.list_(message)
    points = pa.int64() if whole_points else pa.float64()
    rubric_item = pa.struct(
        [("criterion", pa.string()), ("points", points), ("tags", pa.list_(pa.string()))]
    )
    versions = ("rubric_version_ids", pa.list_(pa.int64()))
    metadata = ("metadata", pa.string())  # the prompt's metadata, a JSON object
    if kind == "rl_verl":
        reward_model = pa.struct(
            [
                ("style", pa.string()),
                ("rubrics", pa.list_(rubric_item)),
                ("ground_truth", pa.string()),
            ]
        )
        return pa.schema(
            [
                ("data_source", pa.string()),
                ("prompt", messages),
                ("ability", pa.string()),
                ("reward_model", reward_model),
                (
                    "extra_info",
                    pa.struct(
                        [
                            ("prompt_id", pa.string()),
                            ("split", pa.string()),
                            ("index", pa.int64()),
                            versions,
                            ("rubric", pa.string()),
                            metadata,
                            # verl's loader pops the top-level prompt: rubric rewards read
                            # these copies (RuscaRL's HealthBench reward does).
                            ("prompt", messages),
                            ("reward_model", reward_model),
                        ]
                    ),
                ),
            ]  # fmt: skip
        )
    if kind == "rl_healthbench":
        return pa.schema(
            [
                ("prompt_id", pa.string()),
                ("prompt", messages),
                ("rubrics", pa.list_(rubric_item)),
                ("example_tags", pa.list_(pa.string())),
                ("ideal_completion", pa.string()),
                metadata,
                versions,
                ("split", pa.string()),
            ]  # fmt: skip
        )
    if kind == "rl_rar":
        rar_item = pa.struct(
            [("title", pa.string()), ("description", pa.string()), ("weight", points)]
        )
        return pa.schema(
            [
                ("prompt_id", pa.string()),
                ("question", pa.string()),
                ("messages", messages),
                ("reference_answer", pa.string()),
                ("rubric", pa.list_(rar_item)),
                metadata,
                versions,
                ("split", pa.string()),
            ]  # fmt: skip
        )
    if kind == "preferences":
        text = messages if conversational else pa.string()
        # TRL's collator turns `margin` into a tensor: a null in it is a crash, so it is
        # there only when asked for, and never null.
        margin = [pa.field("margin", pa.float64(), nullable=False)] if margins else []
        return pa.schema(
            [
                ("prompt", text),
                ("chosen", text),
                ("rejected", text),
                ("origin", pa.string()),
                ("also_from", pa.list_(pa.string())),
                *margin,
                ("agreement", pa.float64()),
                ("consistent", pa.bool_()),
                ("prompt_id", pa.string()),
                ("chosen_source", pa.string()),
                ("rejected_source", pa.string()),
                versions,
                ("split", pa.string()),
            ]  # fmt: skip
        )
    if kind == "rubric_sft":
        return pa.schema(
            [
                ("messages", messages),
                ("task", pa.string()),
                ("prompt_id", pa.string()),
                versions,
                ("split", pa.string()),
            ]  # fmt: skip
        )
    if kind == "judge_sft":
        return pa.schema(
            [
                ("prompt", messages),
                ("response", pa.string()),
                ("criterion", pa.string()),
                ("points", pa.float64()),
                ("met", pa.bool_()),
                ("probability", pa.float64()),
                ("explanation", pa.string()),
                ("judge_model", pa.string()),
                ("template_version", pa.string()),
                ("prompt_id", pa.string()),
                ("split", pa.string()),
            ]  # fmt: skip
        )
    if kind == "pairwise_sft":
        verdict = pa.struct([("criterion", pa.string()), ("winner", pa.string())])
        return pa.schema(
            [
                ("prompt", messages),
                ("response_a", pa.string()),
                ("response_b", pa.string()),
                ("winner", pa.string()),
                ("criteria", pa.list_(verdict)),
                ("explanation", pa.string()),
                ("judge_model", pa.string()),
                ("template_version", pa.string()),
                ("prompt_id", pa.string()),
                ("split", pa.string()),
            ]  # fmt: skip
        )
    raise ApplicationError(f"Unknown export kind “{kind}”.")


# --- prompts and their rubrics -------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
            for m in prompt.messages]  # fmt: skip


@dataclass
class PromptRubric:
    prompt: Prompt
    split: str
    criteria: list[Criterion]  # project-wide first, then the prompt's own, in order
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


def _prompts(project: Project, options: ExportOptions) -> Any:
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
    """Each kept prompt with its effective rubric, in id order, batch by batch."""
    excluded = {_norm(x) for x in options.exclude if x.strip()}
    field = _version_field(options)
    wide = _wide_versions(project, options)
    wide_criteria = list(
        Criterion.objects.filter(version_id__in=wide).order_by("version_id", "position")
    )
    wide_criteria.sort(key=lambda c: (wide.index(c.version_id), c.position))
    seen: set[bytes] = set()
    last = 0
    base = _prompts(project, options)
    while True:
        batch = list(base.filter(pk__gt=last)[:PROMPT_BATCH])
        if not batch:
            return
        last = batch[-1].pk
        own = dict(
            Rubric.objects.filter(prompt__in=batch)
            .exclude(status=Rubric.Status.ARCHIVED)
            .values_list("prompt_id", field)
        )
        imported = _imported_keys([p for p in batch if _has_item_extras(p)])
        by_version: dict[int, list[Criterion]] = defaultdict(list)
        for c in Criterion.objects.filter(version_id__in=[v for v in own.values() if v]).order_by(
            "position"
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
                criteria,
                versions,
                _item_extras(prompt, criteria, imported.get(prompt.pk)),
            )


def _has_item_extras(prompt: Prompt) -> bool:
    return isinstance((prompt.metadata or {}).get(RUBRIC_ITEMS_KEY), list)


def _imported_keys(prompts: list[Prompt]) -> dict[int, list[str]]:
    """For each prompt, the criterion keys of its rubric's first (imported) version, in
    order: the importer aligned ``metadata["rubric_items"]`` with that list (one query)."""
    if not prompts:
        return {}
    keys: dict[int, list[str]] = defaultdict(list)
    rows = (
        Criterion.objects.filter(version__rubric__prompt__in=prompts, version__number=1)
        .order_by("version__rubric__prompt_id", "position")
        .values_list("version__rubric__prompt_id", "key")
    )
    for prompt_id, key in rows:
        keys[prompt_id].append(str(key))
    return keys


def _item_extras(
    prompt: Prompt, criteria: list[Criterion], imported: list[str] | None
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


def _has_tags(prompt: Prompt, criteria: list[Criterion], wanted: set[str]) -> bool:
    tags = {t for c in criteria for t in c.tags}
    tags |= set(prompt.metadata.get("example_tags") or []) | set(prompt.metadata.get("tags") or [])
    return bool(tags & wanted)


# --- points: whole numbers stay integers -----------------------------------------------------

# Rubric text and points are shown to the policy in scaffolded rollouts ("worth 10 points"),
# so a whole number is written as an integer (10, not 10.0). One type per export, so that
# the Parquet schema is fixed before the first row: int64 when every criterion of the rubric
# versions the export draws from has whole points, else float64 for every point value.
MAX_EXACT = 2**53  # beyond this a float no longer holds every whole number


def _is_whole(points: float) -> bool:
    return float(points).is_integer() and abs(points) <= MAX_EXACT


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


@dataclass
class Notes:
    """What the dataset card says about the rows beyond their counts. ``whole_points`` is
    decided before the first row; the pair counts are complete once the last row is taken."""

    whole_points: bool = True
    fractional: float | None = None  # a point value that made points float64
    pairs_folded: int = 0  # labels folded into an exported row with the same pair
    pairs_without_margin: int = 0  # pairs left out because no judge gave them a margin

    def number(self, points: float) -> int | float:
        """A point value as this export writes it."""
        if not self.whole_points:
            return float(points)
        if not _is_whole(points):  # a criterion saved after the export looked
            raise ApplicationError(
                f"A criterion with {points:g} points appeared while the export ran (its "
                "points were checked to be whole numbers first): run the export again."
            )
        return int(points)


def _rubric_items(criteria: list[Criterion], notes: Notes) -> list[dict[str, Any]]:
    """The HealthBench / verl rubric items; the text exactly as stored."""
    number = notes.number
    return [{"criterion": c.text, "points": number(c.points), "tags": [str(t) for t in c.tags]}
            for c in criteria]  # fmt: skip


def _rubric_json(criteria: list[Criterion], notes: Notes) -> str:
    number = notes.number
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


# --- RL prompts with rubric rewards ------------------------------------------------------------


def _rl_verl(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for index, pr in enumerate(prompt_rubrics(project, options)):
        reward_model = {
            "style": "rubric",
            "rubrics": _rubric_items(pr.criteria, notes),
            "ground_truth": pr.prompt.reference_answer,
        }
        yield (
            pr.split,
            {
                "data_source": f"rubricstudio/{project.slug}",
                "prompt": pr.messages,
                "ability": "rubric",
                "reward_model": reward_model,
                "extra_info": {
                    "prompt_id": pr.prompt.external_id,
                    "split": pr.split,
                    "index": index,
                    "rubric_version_ids": pr.version_ids,
                    "rubric": _rubric_json(pr.criteria, notes),
                    "metadata": _metadata_json(pr),
                    "prompt": pr.messages,
                    "reward_model": reward_model,
                },
            },
        )


def _rl_healthbench(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for pr in prompt_rubrics(project, options):
        yield (
            pr.split,
            {
                "prompt_id": pr.prompt.external_id,
                "prompt": pr.messages,
                "rubrics": _rubric_items(pr.criteria, notes),
                "example_tags": [str(t) for t in pr.prompt.metadata.get("example_tags") or []],
                "ideal_completion": pr.prompt.reference_answer,
                "metadata": _metadata_json(pr),
                "rubric_version_ids": pr.version_ids,
                "split": pr.split,
            },
        )


def _rar_item(c: Criterion, notes: Notes) -> dict[str, Any]:
    title = next((t[6:] for t in c.tags if isinstance(t, str) and t.startswith("title:")), "")
    prefix = f"{c.category.capitalize()} Criteria: " if c.category else ""
    return {
        "title": title or c.text[:60],
        "description": prefix + c.text,
        "weight": notes.number(c.points),
    }


def _rl_rar(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for pr in prompt_rubrics(project, options):
        yield (
            pr.split,
            {
                "prompt_id": pr.prompt.external_id,
                "question": pr.prompt.last_user_message,
                "messages": pr.messages,
                "reference_answer": pr.prompt.reference_answer,
                "rubric": [_rar_item(c, notes) for c in pr.criteria],
                "metadata": _metadata_json(pr),
                "rubric_version_ids": pr.version_ids,
                "split": pr.split,
            },
        )


# --- rubric-generation SFT ---------------------------------------------------------------------

RUBRIC_TASK = (
    "Write a grading rubric for the conversation below: a JSON list of criteria, each with "
    '"criterion" (one checkable statement about the next assistant turn), "points" '
    '(negative for a mistake to avoid) and "tags".\n\n'
)
CONTRASTIVE_TASK = (
    "Write a grading rubric for the conversation below that prefers the CHOSEN response to "
    "the REJECTED one for the right reasons: a JSON list of criteria, each with "
    '"criterion", "points" (negative for a mistake to avoid) and "tags".\n\n'
)


def _conversation(prompt: Prompt) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in _messages(prompt))


def _rubric_sft(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for batch in _batched(prompt_rubrics(project, options), PROMPT_BATCH):
        labels: dict[int, list[PreferenceLabel]] = defaultdict(list)
        for label in (
            PreferenceLabel.objects.filter(
                _in_batch("prompt_id", batch), source=PreferenceLabel.Source.DATASET
            )
            .select_related("chosen", "rejected")
            .order_by("pk")
        ):
            labels[label.prompt_id].append(label)
        for pr in batch:
            answer = json.dumps(_rubric_items(pr.criteria, notes), ensure_ascii=False)
            common = {"prompt_id": pr.prompt.external_id, "rubric_version_ids": pr.version_ids,
                      "split": pr.split}  # fmt: skip
            user = RUBRIC_TASK + _conversation(pr.prompt)
            yield pr.split, {"messages": [{"role": "user", "content": user},
                                          {"role": "assistant", "content": answer}],
                             "task": "draft", **common}  # fmt: skip
            for label in labels.get(pr.prompt.pk, []):
                user = (CONTRASTIVE_TASK + _conversation(pr.prompt)
                        + f"\n\n[CHOSEN]\n{label.chosen.content}\n\n[REJECTED]\n{label.rejected.content}")  # fmt: skip
                yield pr.split, {"messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": answer}],
                                 "task": "contrastive", **common}  # fmt: skip


def _in_batch(field: str, batch: list[PromptRubric]) -> Q:
    """The id range of a batch of prompts (read in id order): one cheap condition instead of
    a thousand ids; rows of prompts the batch left out are skipped by the caller."""
    return Q(**{f"{field}__gte": batch[0].prompt.pk, f"{field}__lte": batch[-1].prompt.pk})


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- preference pairs ------------------------------------------------------------------------

# When several labels give the same pair (prompt, chosen text, rejected text), one row stands
# for them, from the first origin of this list; the others are named in its `also_from`.
PRECEDENCE = ("expert", "dataset", "judge")
_RANK = {origin: i for i, origin in enumerate(PRECEDENCE)}


@dataclass
class _Pair:
    """One label's pair, before pairs that repeat each other are folded into one row."""

    prompt_id: int
    origin: str
    order: int  # the label's id, or the judge's run id
    chosen: tuple[str, str]  # (source, content)
    rejected: tuple[str, str]
    agreement: float | None = None  # expert labels made by review
    margin: float | None = None  # judge pairs
    consistent: bool | None = None  # pairwise judge pairs


def _pair_row(
    pr: PromptRubric, first: _Pair, group: list[_Pair], options: ExportOptions
) -> dict[str, Any]:
    """The row of a pair that ``group`` (sorted by precedence, ``first`` its head) gave.
    ``origin``, the sources and ``agreement`` are the first label's; ``consistent`` and
    ``margin`` are the judge's (its earliest run's decision with a margin, else its
    earliest) when a judge gave this pair, whichever origin the row is from."""
    judged = [p for p in group if p.origin == "judge"]
    judge = next((p for p in judged if p.margin is not None), judged[0] if judged else None)
    if options.conversational:
        prompt: Any = pr.messages
        good: Any = [{"role": "assistant", "content": first.chosen[1]}]
        bad: Any = [{"role": "assistant", "content": first.rejected[1]}]
    else:
        prompt, good, bad = pr.prompt.last_user_message, first.chosen[1], first.rejected[1]
    origins = {p.origin for p in group}
    row = {"prompt": prompt, "chosen": good, "rejected": bad, "origin": first.origin,
           "also_from": [o for o in PRECEDENCE if o in origins and o != first.origin],
           "agreement": first.agreement if first.origin == "expert" else None,
           "consistent": judge.consistent if judge else None,
           "prompt_id": pr.prompt.external_id, "chosen_source": first.chosen[0],
           "rejected_source": first.rejected[0], "rubric_version_ids": pr.version_ids,
           "split": pr.split}  # fmt: skip
    if options.margins:
        row["margin"] = judge.margin if judge else None
    return row


def _fold(
    pairs: list[_Pair], by_prompt: dict[int, PromptRubric], options: ExportOptions, notes: Notes
) -> list[tuple[_Pair, dict[str, Any]]]:
    """One row per (prompt, chosen text, rejected text), from the label of the first origin
    in ``PRECEDENCE`` (the earliest of that origin); with margins, pairs that no judge gave
    a margin are left out. Counts both in ``notes``."""
    groups: dict[tuple[int, str, str], list[_Pair]] = {}
    for pair in pairs:
        groups.setdefault((pair.prompt_id, pair.chosen[1], pair.rejected[1]), []).append(pair)
    out = []
    for group in groups.values():
        group.sort(key=lambda p: (_RANK[p.origin], p.order))
        first = group[0]
        row = _pair_row(by_prompt[first.prompt_id], first, group, options)
        if options.margins and row["margin"] is None:
            notes.pairs_without_margin += 1
            continue
        notes.pairs_folded += len(group) - 1
        out.append((first, row))
    return out


def _responses_of(batch: list[PromptRubric], also: set[int]) -> dict[int, tuple[str, str]]:
    """(source, content) of the batch's responses by id, read by the prompts' id range
    (an index range, not a join per label), plus any of ``also`` not among them."""
    out = {pk: (source, content) for pk, source, content in Response.objects.filter(
        _in_batch("prompt_id", batch)).values_list("pk", "source", "content")}  # fmt: skip
    missing = also - out.keys()
    if missing:
        out.update((pk, (source, content)) for pk, source, content in Response.objects.filter(
            pk__in=missing).values_list("pk", "source", "content"))  # fmt: skip
    return out


def _preferences(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    sources = set(options.sources)
    decisions: dict[int, list[JudgePair]] | None = None  # the judges' pairs, made once
    for batch in _batched(prompt_rubrics(project, options, need_rubric=False), PROMPT_BATCH):
        by_prompt = {pr.prompt.pk: pr for pr in batch}
        labels = [
            label
            for label in PreferenceLabel.objects.filter(
                _in_batch("prompt_id", batch), source__in=options.origins
            )
            .order_by("pk")
            .values_list("pk", "prompt_id", "source", "chosen_id", "rejected_id")
            if label[1] in by_prompt
        ]
        wanted: list[JudgePair] = []
        if "judge" in options.origins:
            if decisions is None:
                decisions = _judge_pairs(project, options)
            wanted = [p for prompt_id in by_prompt for p in decisions.get(prompt_id, ())]
        texts = _responses_of(
            batch,
            {i for label in labels for i in label[3:]}
            | {i for p in wanted for i in (p.chosen, p.rejected)},
        )
        agreement = _expert_agreement(batch) if "expert" in options.origins else {}
        pairs: list[_Pair] = []
        for pk, prompt_id, origin, chosen_id, rejected_id in labels:
            chosen, rejected = texts[chosen_id], texts[rejected_id]
            if sources and not {chosen[0], rejected[0]} <= sources:
                continue
            share = agreement.get(pk) if origin == "expert" else None
            if (
                options.min_agreement is not None
                and origin == "expert"
                and (share or 0) < options.min_agreement
            ):
                continue
            pairs.append(_Pair(prompt_id, origin, pk, chosen, rejected, agreement=share))
        for p in wanted:
            pairs.append(_Pair(p.prompt_id, "judge", p.run, texts[p.chosen], texts[p.rejected],
                               margin=p.margin, consistent=p.consistent))  # fmt: skip
        rows = _fold(pairs, by_prompt, options, notes)
        rows.sort(key=lambda r: (r[0].prompt_id, r[0].origin, r[0].order))
        for first, row in rows:
            yield by_prompt[first.prompt_id].split, row


def _expert_agreement(batch: list[PromptRubric]) -> dict[int, float]:
    """Expert labels made by review: the share of the item's reviewers who chose as the
    final label did (the adjudicated share may be below 1)."""
    items = ReviewItem.objects.filter(_in_batch("prompt_id", batch), label__isnull=False)
    reviews: dict[int, list[str]] = defaultdict(list)
    for item_id, winner in PairwiseReview.objects.filter(item__in=items).values_list(
        "item_id", "winner"
    ):
        reviews[item_id].append(winner)
    out: dict[int, float] = {}
    for item in items.only("pk", "label_id", "final"):
        winners = reviews.get(item.pk, [])
        if winners:
            share = sum(1 for w in winners if w == item.final) / len(winners)
            out[item.label_id] = max(out.get(item.label_id, 0.0), share)
    return out


@dataclass(frozen=True)
class JudgePair:
    prompt_id: int
    run: int
    chosen: int  # response ids
    rejected: int
    margin: float | None
    consistent: bool | None


def _judge_pairs(project: Project, options: ExportOptions) -> dict[int, list[JudgePair]]:
    """Pairs a judge decided, by prompt, run by run: pairwise runs (both orders merged; a
    tie or an inconsistent pair is no preference) and per-criterion runs (the rubric score
    margin between two responses of a prompt, at least ``min_margin``)."""
    from scoring.runs.results import run_results

    sources = set(options.sources)
    out: dict[int, list[JudgePair]] = defaultdict(list)
    runs = Run.objects.filter(project=project, status=Run.Status.DONE).order_by("pk")
    for run in runs.filter(mode=Run.Mode.PAIRWISE):
        for pair in run_results(run).pairs:
            if pair.failed or pair.sample or pair.winner == "tie":
                continue
            if options.consistent_only and not pair.consistent:
                continue
            chosen, rejected = (pair.a, pair.b) if pair.winner == "a" else (pair.b, pair.a)
            if sources and not {chosen.source, rejected.source} <= sources:
                continue
            margin = None if pair.probability is None else abs(2 * pair.probability - 1)
            out[pair.a.prompt_id].append(
                JudgePair(pair.a.prompt_id, run.pk, chosen.pk, rejected.pk, margin, pair.consistent)
            )
    for run in runs.filter(mode=Run.Mode.PER_CRITERION):
        scored: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for result in run_results(run).responses:
            response = result.response
            if result.sample or result.score is None:
                continue
            if sources and response.source not in sources:
                continue
            scored[response.prompt_id].append((result.score, response.pk))
        for prompt_id, group in scored.items():
            group.sort(key=lambda x: (-x[0], x[1]))
            for i, (high, chosen_id) in enumerate(group):
                for low, rejected_id in group[i + 1 :]:
                    margin = high - low
                    if margin > 0 and margin >= options.min_margin:
                        out[prompt_id].append(
                            JudgePair(
                                prompt_id, run.pk, chosen_id, rejected_id, round(margin, 6), None
                            )  # fmt: skip
                        )
    return out


# --- judge distillation ------------------------------------------------------------------------

CHUNKS_PER_QUERY = 16
FETCH_ROWS = 2000

# The judgments of a few chunks at a time, with what their judge was shown: each unit of
# each chunk (JSON, expanded by the database), its judgment by key (linked to that run, not
# failed) and the response(s), in chunk and unit order (a sort of a few thousand rows).
_UNITS = {
    "postgresql": (
        "CROSS JOIN LATERAL jsonb_array_elements(c.units) WITH ORDINALITY AS u(value, n)",
        "u.value->>'{}'",
        "u.value->'crit'->0->>'{}'",
        "(u.value->'crit')::text",
        "j.detail::text",
        "u.n",
    ),
    "sqlite": (
        "JOIN json_each(c.units) AS u",
        "json_extract(u.value, '$.{}')",
        "json_extract(u.value, '$.crit[0].{}')",
        "json_extract(u.value, '$.crit')",
        "j.detail",
        "u.key",
    ),
}


def _judged_sql(vendor: str, mode: str, chunks: int) -> str:
    expand, field, criterion, criteria, detail, ordinal = _UNITS[vendor]
    table = {m: m._meta.db_table for m in (RunChunk, RunJudgment, Judgment, Response)}
    if mode == Run.Mode.PER_CRITERION:
        columns = (f"{criterion.format('text')}, {criterion.format('points')}, j.met, "
                   "j.probability")  # fmt: skip
        other = ""
        where = "AND j.met IS NOT NULL"
    else:
        columns = f"{criteria}, j.winner, {detail}, o.source, o.content"
        other = f"JOIN {table[Response]} o ON o.id = j.other_id"
        where = ""
    return f"""
        SELECT j.id, j.explanation, j.model, j.template_version,
               r.prompt_id, r.source, r.content, {columns}
        FROM {table[RunChunk]} c
        {expand}
        JOIN {table[Judgment]} j ON j.key = {field.format("k")}
        JOIN {table[RunJudgment]} rj ON rj.judgment_id = j.id AND rj.run_id = c.run_id
        JOIN {table[Response]} r ON r.id = j.response_id
        {other}
        WHERE c.id IN ({", ".join(["%s"] * chunks)}) AND j.error = '' {where}
        ORDER BY c.run_id, c."index", {ordinal}
    """  # noqa: S608 (table names from the models; values are parameters)


def _judged(project: Project, mode: str) -> Iterator[tuple[Any, ...]]:
    """Every good judgment of the project's runs of ``mode`` as a tuple of plain values
    (the columns of ``_judged_sql``), in run, chunk and unit order, a judgment that several
    runs share once (from the first); read ``CHUNKS_PER_QUERY`` chunks at a time through a
    server-side cursor, on PostgreSQL by a reader thread a few batches ahead."""
    vendor = connection.vendor if connection.vendor in _UNITS else "sqlite"
    project_id = project.pk

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        chunks = (
            RunChunk.objects.filter(run__project_id=project_id, run__mode=mode, retry=False)
            .exclude(run__status=Run.Status.QUEUED)
            .order_by("run_id", "index")
            .values_list("pk", flat=True)
        )
        for group in _batched(chunks.iterator(chunk_size=1000), CHUNKS_PER_QUERY):
            with connection.chunked_cursor() as cursor:
                cursor.execute(_judged_sql(vendor, mode, len(group)), group)
                while rows := cursor.fetchmany(FETCH_ROWS):
                    yield rows

    seen = bytearray()  # a bit per judgment id: memory grows with the largest id / 8
    for rows in read_ahead(batches) if can_read_ahead() else batches():
        for row in rows:
            pk = row[0]
            byte, bit = pk >> 3, 1 << (pk & 7)
            if byte >= len(seen):
                seen.extend(bytes(byte + 1 - len(seen) + 4096))
            if seen[byte] & bit:
                continue
            seen[byte] |= bit
            yield row


def _distill(project: Project, options: ExportOptions, notes: Notes, mode: str) -> Iterator[Row]:
    kept = {
        pr.prompt.pk: (pr.messages, pr.prompt.external_id, pr.split)
        for pr in prompt_rubrics(project, options, need_rubric=False)
    }
    sources = set(options.sources)
    pairwise = mode == Run.Mode.PAIRWISE
    for row in _judged(project, mode):
        pk, explanation, model, template, prompt_pk, source, content, *rest = row
        prompt = kept.get(prompt_pk)
        if prompt is None or (sources and source not in sources):
            continue
        messages, external_id, split = prompt
        if not pairwise:
            text, points, met, probability = rest
            yield split, {"prompt": messages, "response": content, "criterion": text,
                          "points": float(points), "met": bool(met), "probability": probability,
                          "explanation": explanation, "judge_model": model,
                          "template_version": template, "prompt_id": external_id,
                          "split": split}  # fmt: skip
            continue
        shown, winner, detail, other_source, other = rest
        if sources and other_source not in sources:
            continue
        verdicts = (json.loads(detail) if detail else {}).get("criteria") or {}
        criteria = [{"criterion": c["text"], "winner": str(verdicts.get(str(i), ""))}
                    for i, c in enumerate(json.loads(shown), start=1)]  # fmt: skip
        yield split, {"prompt": messages, "response_a": content, "response_b": other,
                      "winner": winner, "criteria": criteria, "explanation": explanation,
                      "judge_model": model, "template_version": template,
                      "prompt_id": external_id, "split": split}  # fmt: skip


# --- entry points ----------------------------------------------------------------------------

_KINDS = {
    "rl_verl": _rl_verl,
    "rl_healthbench": _rl_healthbench,
    "rl_rar": _rl_rar,
    "rubric_sft": _rubric_sft,
    "preferences": _preferences,
    "judge_sft": lambda project, options, notes: _distill(
        project, options, notes, Run.Mode.PER_CRITERION
    ),
    "pairwise_sft": lambda project, options, notes: _distill(
        project, options, notes, Run.Mode.PAIRWISE
    ),
}
# The kinds whose rubric points follow the whole-number rule (judge distillation rows keep
# the points each judge was shown, as float64).
POINTED_KINDS = ("rl_verl", "rl_healthbench", "rl_rar", "rubric_sft")
# Kinds in a source format's shape: in JSONL, the prompt's metadata comes back as the
# record's own top-level fields (``writers.write_export``'s ``spread``).
# (the field holding the metadata, the field listing the rubric items that the metadata's
# ``rubric_items`` go back into).
SPREAD = {"rl_healthbench": ("metadata", "rubrics"), "rl_rar": ("metadata", "rubric")}


@dataclass
class Prepared:
    """An export ready to write: its schema, its rows (``(split, row)``, streamed once, in
    a deterministic order) and the notes for its card (complete after the last row)."""

    schema: Any
    rows: Iterator[Row]
    notes: Notes
    spread: tuple[str, str] | None = None  # for ``write_export``


def prepare(project: Project, options: ExportOptions) -> Prepared:
    """Decide what the rows' types depend on (whole or fractional points: one query), then
    the schema, and the rows to stream."""
    notes = Notes()
    if options.kind in POINTED_KINDS:
        notes.fractional = _first_fractional(project, options)
        notes.whole_points = notes.fractional is None
    return Prepared(
        schema(options.kind, options.conversational, whole_points=notes.whole_points,
               margins=options.margins),
        _KINDS[options.kind](project, options, notes),
        notes,
        SPREAD.get(options.kind),
    )  # fmt: skip


def iter_rows(project: Project, options: ExportOptions) -> Iterator[Row]:
    """(split, row) for every row of the export, in a deterministic order (``prepare``
    gives the schema that goes with them)."""
    return prepare(project, options).rows


def count(project: Project, options: ExportOptions) -> int:
    """An upper bound of the rows, for progress."""
    if options.kind in ("judge_sft", "pairwise_sft"):
        mode = Run.Mode.PER_CRITERION if options.kind == "judge_sft" else Run.Mode.PAIRWISE
        return RunJudgment.objects.filter(run__project=project, run__mode=mode).count()
    if options.kind == "preferences":
        return PreferenceLabel.objects.filter(prompt__project=project).count()
    return _prompts(project, options).count()


def card_facts(project: Project, options: ExportOptions) -> dict[str, Any]:
    """What the dataset card says beyond the counts: the response sources, rubric
    statistics of the versions exported, and provenance (judges, template versions)."""
    field = _version_field(options)
    versions = [
        v for v in Rubric.objects.filter(project=project).values_list(field, flat=True) if v
    ]
    per_version = defaultdict(int)
    negative = total = 0
    for version_id, points in Criterion.objects.filter(version_id__in=versions).values_list(
        "version_id", "points"
    ):
        per_version[version_id] += 1
        total += 1
        negative += points < 0
    sizes = sorted(per_version.values())
    runs = Run.objects.filter(project=project).exclude(status=Run.Status.QUEUED)
    judges = sorted(
        {
            (e or "", m, t)
            for e, m, t in runs.values_list("endpoint__name", "model", "template_version")
        }
    )
    sources = Response.objects.filter(prompt__project=project)
    if options.sources:
        sources = sources.filter(Q(source__in=options.sources))
    return {
        "sources": sorted(set(sources.values_list("source", flat=True))),
        "rubric_stats": {
            "rubrics": len(sizes),
            "criteria": total,
            "criteria_per_rubric_mean": round(total / len(sizes), 3) if sizes else 0,
            "criteria_per_rubric_min": sizes[0] if sizes else 0,
            "criteria_per_rubric_max": sizes[-1] if sizes else 0,
            "negative_point_share": round(negative / total, 4) if total else 0,
        },
        "provenance": {
            "judges": [{"endpoint": e, "model": m, "template_version": t} for e, m, t in judges],
            "rubric_versions": options.versions,
            "options": options.as_dict(),
        },
    }


__all__ = [
    "Notes",
    "Prepared",
    "card_facts",
    "count",
    "iter_rows",
    "prepare",
    "prompt_rubrics",
    "schema",
]
