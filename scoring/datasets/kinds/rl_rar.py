"""RL prompts with rubrics in the RaR (Rubrics as Rewards) shape: ``prompt_id``,
``question`` (the last user message), ``messages``, ``reference_answer`` and ``rubric``
(items with a title, a description prefixed by the criterion's category, and a weight), the
prompt's metadata (in JSONL, spread back into top-level fields), rubric versions and split."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from annotation.projects.models import Project
from scoring.datasets.kinds.base import (
    RUBRIC_HINT,
    ExportKind,
    Notes,
    Row,
    messages_type,
    metadata_field,
    points_type,
    spread_notes,
    versions_field,
)
from scoring.datasets.kinds.prompts import (
    CriterionRow,
    _metadata_json,
    prompt_count,
    prompt_rubrics,
)

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    messages = messages_type()
    points = points_type(whole_points)
    versions = versions_field()
    metadata = metadata_field()
    rar_item = pa.struct([("title", pa.string()), ("description", pa.string()), ("weight", points)])
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


def _rar_item(c: CriterionRow, notes: Notes) -> dict[str, Any]:
    title = next((t[6:] for t in c.tags if isinstance(t, str) and t.startswith("title:")), "")
    prefix = f"{c.category.capitalize()} Criteria: " if c.category else ""
    return {
        "title": title or c.text[:60],
        "description": prefix + c.text,
        "weight": notes.numbers[c.points],
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


DESCRIPTION = (
    "Prompts with their rubrics in the Rubrics-as-Rewards (RaR) shape: the question and "
    "its weighted rubric items."
)

KIND = ExportKind(
    "rl_rar",
    label="RL prompts with rubrics, RaR shape",
    description=DESCRIPTION,
    empty_hint=RUBRIC_HINT,
    schema=schema,
    rows=_rl_rar,
    count=prompt_count,
    pointed=True,
    spread=("metadata", "rubric"),
    notes=spread_notes,
)
