"""RL prompts with rubrics for TRL's ``GRPOTrainer``: ``prompt`` (chat messages, the only
column the trainer itself reads), and the columns it hands every reward function as keyword
arguments, one value per completion: ``rubric`` (HealthBench items: criterion, points,
tags), ``reference_answer``, ``prompt_id``, the rubric versions and the split."""

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
    rubric_item_type,
    versions_field,
)
from scoring.datasets.kinds.prompts import _rubric_items, prompt_count, prompt_rubrics

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("prompt", messages_type()),
            ("rubric", pa.list_(rubric_item_type(whole_points))),
            ("reference_answer", pa.string()),
            ("prompt_id", pa.string()),
            versions_field(),
            ("split", pa.string()),
        ]
    )


def _rows(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    for pr in prompt_rubrics(project, options):
        yield (
            pr.split,
            {
                "prompt": pr.messages,
                "rubric": _rubric_items(pr.criteria, notes),
                "reference_answer": pr.prompt.reference_answer,
                "prompt_id": pr.prompt.external_id,
                "rubric_version_ids": pr.version_ids,
                "split": pr.split,
            },
        )


def _notes(**facts: Any) -> list[str]:
    return [
        "`GRPOTrainer` reads `prompt` and passes every other column to each reward function "
        "as a keyword argument holding one value per completion (a prompt's values repeated "
        "for each of its generations): a rubric reward reads `rubric` (and "
        "`reference_answer`) there, e.g. `def reward(prompts, completions, rubric, **kw)`. "
        "The HealthBench score of a completion is the points of the met items over the sum "
        "of the positive points."
    ]


DESCRIPTION = (
    "Prompts for GRPO with rubric rewards, as TRL's `GRPOTrainer` reads them: `prompt` "
    "(chat messages) and, for the reward functions, `rubric` (each item a `criterion` with "
    "its `points` and `tags`), `reference_answer` and `prompt_id`."
)

KIND = ExportKind(
    "rl_trl_grpo",
    label="RL prompts with rubrics for TRL's GRPOTrainer",
    description=DESCRIPTION,
    empty_hint=RUBRIC_HINT,
    schema=schema,
    rows=_rows,
    count=prompt_count,
    pointed=True,
    notes=_notes,
)
