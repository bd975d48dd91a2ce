"""Holistic: one call per response rates it 1–10 given its whole rubric; the score is the
rating rescaled (``aggregate.rar_implicit``). LLM endpoints only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scoring.engine import aggregate, judging
from scoring.runs.models import Run
from scoring.runs.modes.base import (
    Context,
    Criterion,
    JudgingMode,
    PlanSpec,
    Row,
    Unit,
    Verdicts,
    judge_criteria,
    judgment_key,
    judgment_row,
    shown,
    usage_fields,
)

RATING = {"text": "Holistic rating"}  # what a rating is shown as among a response's verdicts


class HolisticMode(JudgingMode):
    value = Run.Mode.HOLISTIC
    template = "holistic"
    chunk_size = 100
    instruction_chars = 1500
    output_tokens_per_call = 150

    def plan_prompt(
        self, prompt_id: int, group: list[dict[str, Any]], rubric: list[Criterion], spec: PlanSpec
    ) -> Iterator[tuple[Unit, int]]:
        criteria, seen = tuple(rubric), [shown(c) for c in rubric]
        texts = sum(len(c["text"]) for c in rubric)
        for row in group:
            for sample in range(spec.samples):
                key = judgment_key(self.value, row["seen"], seen, spec.judge, spec.version, sample)
                unit = Unit(row["id"], sample, criteria, (key,), listed_keys=True)
                yield unit, len(row["content"]) + texts

    def messages(
        self, unit: Unit, contexts: dict[int, Context], secret: bytes
    ) -> list[dict[str, str]]:
        response = contexts[unit.response_id]
        return judging.holistic_messages(
            response.conversation, response.text, judge_criteria(unit), secret=secret
        )

    def schema(self, unit: Unit) -> tuple[dict[str, Any], str]:
        return judging.HOLISTIC_SCHEMA, "rating"

    def verdict_rows(self, unit: Unit, run: Run, result: Any) -> list[Row]:
        return [
            judgment_row(unit, unit.keys[0], run, rating=result.parsed["rating"],
                         explanation=result.parsed["explanation"],
                         **usage_fields(result.usage, result.latency))
        ]  # fmt: skip

    def result_slots(self, unit: Unit) -> list[tuple[Criterion, str]]:
        return [(dict(RATING), unit.keys[0])]

    def score(self, verdicts: Verdicts) -> float | None:
        judgment = verdicts[0][1]
        return aggregate.rar_implicit(judgment.rating) if judgment is not None else None
