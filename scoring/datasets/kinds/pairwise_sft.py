"""Judge distillation, pairwise verdicts: one row per good judgment of the pairwise runs:
the prompt, the two responses, the winner overall and per criterion (as the judge was shown
the criteria), the explanation, and the judge's model and template version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from annotation.projects.models import Project
from scoring.datasets.kinds.base import ExportKind, Notes, Row, messages_type
from scoring.datasets.kinds.judged import _distill, judgment_count
from scoring.runs.models import Run

if TYPE_CHECKING:
    from scoring.datasets.options import ExportOptions


def schema(*, conversational: bool = True, whole_points: bool = True, margins: bool = False) -> Any:
    import pyarrow as pa

    messages = messages_type()
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


def _rows(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    return _distill(project, options, notes, Run.Mode.PAIRWISE)


def _count(project: Project, options: ExportOptions) -> int:
    return judgment_count(project, Run.Mode.PAIRWISE)


DESCRIPTION = (
    "Judge distillation: a prompt and two responses, with the pairwise verdict and its explanation."
)

KIND = ExportKind(
    "pairwise_sft",
    label="Judge distillation: pairwise verdicts",
    description=DESCRIPTION,
    empty_hint="no successful pairwise judgment of a scoring run matched these options.",
    schema=schema,
    rows=_rows,
    count=_count,
)
