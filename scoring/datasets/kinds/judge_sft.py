"""Judge distillation, criterion verdicts: one row per good judgment of the per-criterion
runs: the prompt, the response, the criterion and its points as the judge was shown them,
the verdict (``met``, its probability) and explanation, and the judge's model and template
version."""

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


def _rows(project: Project, options: ExportOptions, notes: Notes) -> Iterator[Row]:
    return _distill(project, options, notes, Run.Mode.PER_CRITERION)


def _count(project: Project, options: ExportOptions) -> int:
    return judgment_count(project, Run.Mode.PER_CRITERION)


DESCRIPTION = (
    "Judge distillation: a prompt, a response and one criterion, with the verdict and "
    "its explanation."
)

KIND = ExportKind(
    "judge_sft",
    label="Judge distillation: criterion verdicts",
    description=DESCRIPTION,
    empty_hint="no successful per-criterion judgment of a scoring run matched these options.",
    schema=schema,
    rows=_rows,
    count=_count,
)
