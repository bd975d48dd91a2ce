"""Per criterion: one call (or, with a local or logprob judge, one P(yes) reading) per
response and criterion, giving a met/not-met verdict; the response's score is the
HealthBench score of its verdicts, and with a probability judge also its expectation over
P(met)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from scoring.engine import aggregate, judging
from scoring.engine.answer_tokens import is_met
from scoring.engine.gateway import Gateway
from scoring.runs.models import Run
from scoring.runs.modes.base import (
    LOCAL_SLICE,
    Context,
    Criterion,
    JudgingMode,
    PlanSpec,
    Row,
    Unit,
    Verdicts,
    Write,
    judge_criteria,
    judgment_key,
    judgment_row,
    read_with,
    shown,
    usage_fields,
)
from scoring.runs.modes.logprobs import read_questions


class PerCriterionMode(JudgingMode):
    value = Run.Mode.PER_CRITERION
    template = "criterion"
    chunk_size = 500
    # A local judge's chunk feeds whole GPU batches (a response's criteria stay together
    # but for the one a chunk boundary cuts); gpu workers are few: no spreading to do.
    local_chunk_size = 1000
    instruction_chars = 1400
    output_tokens_per_call = 120

    def local_template_version(self) -> str:
        # scoring.judges.local is imported lazily (the gpu workers' package).
        from scoring.judges.local.prompting import template_version

        return template_version(False)

    def plan_prompt(
        self, prompt_id: int, group: list[dict[str, Any]], rubric: list[Criterion], spec: PlanSpec
    ) -> Iterator[tuple[Unit, int]]:
        for row in group:
            for sample in range(spec.samples):
                for c in rubric:
                    key = judgment_key(self.value, row["seen"], shown(c), spec.judge,
                                       spec.version, sample)  # fmt: skip
                    yield (
                        Unit(row["id"], sample, (c,), (key,)),
                        len(row["content"]) + len(c["text"]),
                    )

    def messages(
        self, unit: Unit, contexts: dict[int, Context], secret: bytes
    ) -> list[dict[str, str]]:
        response = contexts[unit.response_id]
        criterion = judge_criteria(unit)[0]
        return judging.criterion_messages(
            response.conversation, response.text, criterion, secret=secret
        )

    def schema(self, unit: Unit) -> tuple[dict[str, Any], str]:
        return judging.CRITERION_SCHEMA, "verdict"

    def verdict_rows(self, unit: Unit, run: Run, result: Any) -> list[Row]:
        verdict = result.parsed
        return [
            judgment_row(unit, unit.keys[0], run, criterion_key=unit.criteria[0]["key"],
                         met=verdict["criteria_met"], explanation=verdict["explanation"],
                         **usage_fields(result.usage, result.latency))
        ]  # fmt: skip

    def failure_slots(self, unit: Unit) -> list[tuple[str, str | None]]:
        return [(unit.keys[0], unit.criteria[0]["key"])]

    def judge_local(
        self,
        judge: Any,
        run: Run,
        units: list[Unit],
        contexts: dict[int, Context],
        threshold: float,
        write: Write,
    ) -> None:
        """The units of one response share the prefix [instructions + conversation +
        response]: its KV cache is computed once and every criterion is read against it."""
        groups: dict[tuple[int, int], list[Unit]] = defaultdict(list)
        for unit in units:
            groups[(unit.response_id, unit.sample)].append(unit)
        keys = list(groups)
        for start in range(0, len(keys), LOCAL_SLICE):
            part = {k: groups[k] for k in keys[start : start + LOCAL_SLICE]}
            write(self._read(judge, run, part, contexts, threshold))

    def _read(
        self,
        judge: Any,
        run: Run,
        groups: dict[tuple[int, int], list[Unit]],
        contexts: dict[int, Context],
        threshold: float,
    ) -> list[Row]:
        from scoring.judges.local.prompting import criterion_pieces

        rows: list[Row] = []
        batch, members = [], []
        for (response_id, _), units in groups.items():
            ctx = contexts[response_id]
            try:
                pieces = criterion_pieces(
                    judge.tokenizer, ctx.conversation, ctx.text,
                    [judge_criteria(u)[0] for u in units],
                )  # fmt: skip
                judge.check_fits(len(pieces.prefix) + len(s) for s in pieces.suffixes)
            except ValueError as exc:
                for unit in units:
                    rows += self.failure_rows(unit, run, f"prompt: {exc}", None)
                continue
            batch.append((pieces.prefix, pieces.suffixes))
            members.append((units, pieces))
        if not batch:
            return rows
        started = time.perf_counter()
        readings = judge.score_shared(batch)
        latency = (time.perf_counter() - started) / max(1, sum(len(u) for u, _ in members))
        for (units, pieces), found in zip(members, readings, strict=True):
            for unit, suffix, reading in zip(units, pieces.suffixes, found, strict=True):
                rows.append(
                    judgment_row(
                        unit,
                        unit.keys[0],
                        run,
                        criterion_key=unit.criteria[0]["key"],
                        met=is_met(reading.probability, threshold),
                        probability=reading.probability,
                        detail={"mass": round(reading.mass, 6), **read_with(judge)},
                        prompt_tokens=len(pieces.prefix) + len(suffix),
                        latency=latency,
                    )
                )
        return rows

    async def judge_logprobs(
        self,
        gateway: Gateway,
        run: Run,
        unit: Unit,
        contexts: dict[int, Context],
        threshold: float,
    ) -> list[Row]:
        """P(yes) of the criterion from one one-token answer; met when P(yes) ≥ the
        threshold, as a local judge's."""
        # The prompts are the local judge's (its prompting module is torch-free).
        from scoring.judges.local.prompting import criterion_messages

        ctx = contexts[unit.response_id]
        try:
            questions = criterion_messages(ctx.conversation, ctx.text, judge_criteria(unit))
        except ValueError as exc:
            return self.failure_rows(unit, run, f"prompt: {exc}", None)
        read = await read_questions(gateway, run, questions, pairwise=False)
        if read.error:
            return self.failure_rows(unit, run, read.error, read.usage)
        (reading,) = read.readings
        return [
            judgment_row(
                unit,
                unit.keys[0],
                run,
                criterion_key=unit.criteria[0]["key"],
                met=is_met(reading.probability, threshold),
                probability=reading.probability,
                detail={"mass": round(reading.mass, 6), "answer": read.answers[0]},
                **usage_fields(read.usage, read.latency),
            )
        ]

    def expected(self, verdicts: Verdicts) -> float | None:
        probabilities = [j.probability if j is not None else None for _, j in verdicts]
        points = [c["points"] for c, _ in verdicts]
        return aggregate.healthbench_expected(points, probabilities)
