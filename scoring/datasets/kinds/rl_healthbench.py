"""RL prompts with rubrics in HealthBench's shape: ``prompt_id``, ``prompt``, ``rubrics``,
``example_tags``, ``ideal_completion``, the prompt's metadata (in JSONL, spread back into
top-level fields as in the source file), the rubric versions and the split."""

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
    rubric_item_type,
    spread_notes,
    versions_field,
)
from scoring.datasets.kinds.prompts import (
    _metadata_json,
    _rubric_items,
    prompt_count,
    prompt_rubrics,
)

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    messages = messages_type()
    rubric_item = rubric_item_type(whole_points)
    versions = versions_field()
    metadata = metadata_field()
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


DESCRIPTION = (
    "Prompts with their rubrics in the HealthBench shape: the conversation and a list of "
    "rubric items, each a criterion with its points and tags."
)

KIND = ExportKind(
    "rl_healthbench",
    label="RL prompts with rubrics, HealthBench shape",
    description=DESCRIPTION,
    empty_hint=RUBRIC_HINT,
    schema=schema,
    rows=_rl_healthbench,
    count=prompt_count,
    pointed=True,
    spread=("metadata", "rubrics"),
    notes=spread_notes,
)
