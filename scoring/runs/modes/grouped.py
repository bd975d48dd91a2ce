"""Grouped: one call per response gives a met/not-met verdict on every criterion of its
rubric (a judgment per criterion, the call's cost on the first); scored like per
criterion. LLM endpoints only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scoring.engine import judging
from scoring.engine.gateway_types import Usage
from scoring.runs.models import Run
from scoring.runs.modes.base import (
    Context,
    Criterion,
    JudgingMode,
    PlanSpec,
    Row,
    Unit,
    judge_criteria,
    judgment_key,
    judgment_row,
    shown,
    usage_fields,
)


class GroupedMode(JudgingMode):
    value = Run.Mode.GROUPED
    template = "grouped"
    chunk_size = 100
    instruction_chars = 1600
    output_tokens_per_call = 60 * 10  # a short verdict for each of about ten criteria

    def plan_prompt(
        self, prompt_id: int, group: list[dict[str, Any]], rubric: list[Criterion], spec: PlanSpec
    ) -> Iterator[tuple[Unit, int]]:
        criteria, seen = tuple(rubric), [shown(c) for c in rubric]
        texts = sum(len(c["text"]) for c in rubric)
        for row in group:
            for sample in range(spec.samples):
                keys = tuple(
                    judgment_key(self.value, row["seen"], seen, i, spec.judge, spec.version, sample)
                    for i in range(len(rubric))
                )
                unit = Unit(row["id"], sample, criteria, keys, listed_keys=True)
                yield unit, len(row["content"]) + texts

    def messages(
        self, unit: Unit, contexts: dict[int, Context], secret: bytes
    ) -> list[dict[str, str]]:
        response = contexts[unit.response_id]
        return judging.grouped_messages(
            response.conversation, response.text, judge_criteria(unit), secret=secret
        )

    def schema(self, unit: Unit) -> tuple[dict[str, Any], str]:
        return judging.grouped_schema(len(unit.criteria)), "verdicts"

    def verdict_rows(self, unit: Unit, run: Run, result: Any) -> list[Row]:
        verdicts = judging.parse_grouped(result.parsed, len(unit.criteria))
        rows = []
        for i, ((met, why), c) in enumerate(zip(verdicts, unit.criteria, strict=True)):
            usage = result.usage if i == 0 else Usage()  # the one call's cost, once
            rows.append(
                judgment_row(unit, unit.keys[i], run, criterion_key=c["key"], met=met,
                             explanation=why, **usage_fields(usage, result.latency))
            )  # fmt: skip
        return rows

    def failure_slots(self, unit: Unit) -> list[tuple[str, str | None]]:
        return list(zip(unit.keys, [c["key"] for c in unit.criteria], strict=True))
