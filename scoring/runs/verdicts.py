"""A prompt's verdicts for its editor: how the rubric scored the prompt's responses in a
per-criterion run (the latest that judged them, or a chosen one), criterion by criterion,
with the criteria every response meets or none does marked, and what changed in the rubric
since that run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q

from annotation.prompts.models import Prompt, Response
from annotation.rubrics.models import Criterion
from scoring.runs.models import Judgment, Run
from scoring.runs.results import ResponseResult, run_results

PER_CRITERION = "per_criterion"


@dataclass
class CriterionRow:
    criterion: dict[str, Any]  # as the run judged it
    cells: list[Judgment | None]  # one per response, in the columns' order
    current_text: str | None  # the text now, where it changed since the run; None if gone

    @property
    def met(self) -> list[bool]:
        return [c is not None and not c.error and bool(c.met) for c in self.cells]

    @property
    def saturation(self) -> str:
        """ "all" when every response meets it, "none" when none does (it cannot tell
        the responses apart), else ""."""
        judged = [c for c in self.cells if c is not None and not c.error]
        if len(judged) < 2 or len(judged) < len(self.cells):
            return ""
        met = sum(bool(c.met) for c in judged)
        return "all" if met == len(judged) else "none" if met == 0 else ""


@dataclass
class PromptVerdicts:
    run: Run
    responses: list[ResponseResult]  # the columns
    rows: list[CriterionRow]
    new_criteria: list[str] = field(default_factory=list)  # in the rubric now, not judged


def runs_for_prompt(*, prompt: Prompt, limit: int = 20) -> list[Run]:
    """The project's per-criterion runs that covered this prompt, newest first (among the
    project's latest 200 such runs)."""
    runs = (
        Run.objects.without_probes()
        .filter(project_id=prompt.project_id, mode=PER_CRITERION)
        .exclude(status=Run.Status.CANCELLED)
        .select_related("endpoint")
        .order_by("-created_at", "-pk")[:200]
    )
    return [r for r in runs if not r.prompt_ids or prompt.pk in r.prompt_ids][:limit]


def current_criteria(*, prompt: Prompt) -> list[dict[str, Any]]:
    """The key and text of the criteria that apply to the prompt now: its rubric's and the
    project-wide rubrics' current versions."""
    rows = (
        Criterion.objects.filter(
            version__rubric__project_id=prompt.project_id,
            version=F("version__rubric__current_version"),
        )
        .filter(Q(version__rubric__prompt=prompt) | Q(version__rubric__prompt__isnull=True))
        .exclude(version__rubric__status="archived")
        .order_by("version__rubric__prompt_id", "position")
        .values_list("key", "text")
    )
    return [{"key": str(key), "text": text} for key, text in rows]


def prompt_verdicts(
    *, prompt: Prompt, run: Run, current: list[dict[str, Any]]
) -> PromptVerdicts | None:
    """The run's verdicts on the prompt's responses (sample 0), against ``current``, the
    rubric's criteria now (key and text); None when the run judged none of them."""
    ids = set(Response.objects.filter(prompt=prompt).without_probes().values_list("pk", flat=True))
    results = run_results(run, with_verdicts=True, response_ids=ids)
    columns = [r for r in results.responses if r.sample == 0]
    if not columns:
        return None
    order: list[str] = []
    criteria: dict[str, dict[str, Any]] = {}
    cells: dict[str, dict[int, Judgment | None]] = {}
    for column, result in enumerate(columns):
        for criterion, judgment in result.verdicts:
            key = str(criterion.get("key"))
            if key not in criteria:
                order.append(key)
                criteria[key] = criterion
            cells.setdefault(key, {})[column] = judgment
    now = {str(c["key"]): c["text"] for c in current}
    rows = []
    for key in order:
        text_now = now.get(key)
        rows.append(
            CriterionRow(
                criteria[key],
                [cells[key].get(i) for i in range(len(columns))],
                None
                if text_now is None
                else (text_now if text_now != criteria[key]["text"] else ""),
            )
        )
    judged = set(order)
    new = [c["text"] for c in current if str(c["key"]) not in judged]
    return PromptVerdicts(run, columns, rows, new)
