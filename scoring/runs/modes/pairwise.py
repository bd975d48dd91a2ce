"""Pairwise: two responses to a prompt compared given its rubric, in both orders (a unit
is one order: the response shown first is A); the run's results merge the two orders of
each pair and measure the judge's position bias. A local judge reads P(A) for the whole
rubric and for each criterion from the shared prefix [instructions + conversation + A +
B]; a logprob judge asks the same questions, one call each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from annotation.errors import ApplicationError
from scoring.engine import judging, pairwise
from scoring.engine.answer_tokens import Reading
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
    Write,
    judge_criteria,
    judgment_key,
    judgment_row,
    read_with,
    shown,
    usage_fields,
)
from scoring.runs.modes.logprobs import read_questions


def verdict(p: float) -> str:
    """The single-order verdict of P(A): the more likely letter ("tie" only at exactly ½)."""
    return "A" if p > 0.5 else "B" if p < 0.5 else "tie"


def _shown(unit: Unit, contexts: dict[int, Context]) -> tuple[Context, Context]:
    """The responses shown as A and as B."""
    assert unit.other_id is not None, "a pairwise unit names the response shown second"
    return contexts[unit.response_id], contexts[unit.other_id]


class PairwiseMode(JudgingMode):
    value = Run.Mode.PAIRWISE
    template = "pairwise"
    chunk_size = 100
    local_chunk_size = 200
    instruction_chars = 1800
    output_tokens_per_call = 200
    compares_pairs = True

    def local_template_version(self) -> str:
        # scoring.judges.local is imported lazily (the gpu workers' package).
        from scoring.judges.local.prompting import template_version

        return template_version(True)

    def check_options(self, *, pair_plan: str, baseline_source: str, pairs_per_prompt: int) -> None:
        if pair_plan and pair_plan not in Run.PairPlan.values:
            raise ApplicationError(f"Unknown pair plan “{pair_plan}”.")
        if pair_plan == Run.PairPlan.BASELINE and not baseline_source:
            raise ApplicationError("Name the baseline source to compare every source against.")
        if not 1 <= pairs_per_prompt <= 1000:
            raise ApplicationError("Pairs per prompt are between 1 and 1000.")

    def pair_plan_for(self, pair_plan: str) -> str:
        return pair_plan or Run.PairPlan.ALL

    def plan_prompt(
        self, prompt_id: int, group: list[dict[str, Any]], rubric: list[Criterion], spec: PlanSpec
    ) -> Iterator[tuple[Unit, int]]:
        criteria, seen = tuple(rubric), [shown(c) for c in rubric]
        by_id = {r["id"]: r for r in group}
        for a, b in self._pairs(group, spec, prompt_id):
            chars = len(by_id[a]["content"]) + len(by_id[b]["content"])
            for sample in range(spec.samples):
                for order, (first, second) in (("ab", (a, b)), ("ba", (b, a))):
                    key = judgment_key(self.value, by_id[first]["seen"], by_id[second]["seen"],
                                       seen, spec.judge, spec.version, sample)  # fmt: skip
                    unit = Unit(first, sample, criteria, (key,), other_id=second, pair=(a, b),
                                order=order)  # fmt: skip
                    yield unit, chars

    @staticmethod
    def _pairs(
        group: list[dict[str, Any]], spec: PlanSpec, prompt_id: int
    ) -> list[tuple[int, int]]:
        responses = [(r["id"], r["source"]) for r in group]
        if spec.pair_plan == Run.PairPlan.BASELINE:
            return pairwise.plan_vs_baseline(responses, spec.baseline_source)
        if spec.pair_plan == Run.PairPlan.SAMPLED:
            return pairwise.plan_sampled(responses, spec.pairs_per_prompt, seed=prompt_id)
        return pairwise.plan_all_pairs(responses)

    def messages(
        self, unit: Unit, contexts: dict[int, Context], secret: bytes
    ) -> list[dict[str, str]]:
        first, second = _shown(unit, contexts)
        return judging.pairwise_messages(
            first.conversation, first.text, second.text, judge_criteria(unit), secret=secret
        )

    def schema(self, unit: Unit) -> tuple[dict[str, Any], str]:
        return judging.pairwise_schema(len(unit.criteria)), "comparison"

    def verdict_rows(self, unit: Unit, run: Run, result: Any) -> list[Row]:
        winner, per_criterion, why = judging.parse_pairwise(result.parsed, len(unit.criteria))
        detail = {**self.failure_detail(unit), "criteria": per_criterion}
        return [
            judgment_row(unit, unit.keys[0], run, winner=winner, detail=detail, explanation=why,
                         **usage_fields(result.usage, result.latency))
        ]  # fmt: skip

    def failure_detail(self, unit: Unit) -> dict[str, Any]:
        return {"order": unit.order, "pair": list(unit.pair or ())}

    def judge_local(
        self,
        judge: Any,
        run: Run,
        units: list[Unit],
        contexts: dict[int, Context],
        threshold: float,
        write: Write,
    ) -> None:
        for start in range(0, len(units), LOCAL_SLICE):
            write(self._read(judge, run, units[start : start + LOCAL_SLICE], contexts))

    def _read(
        self, judge: Any, run: Run, units: list[Unit], contexts: dict[int, Context]
    ) -> list[Row]:
        """The suffixes are the whole rubric (the overall verdict) and each criterion."""
        from scoring.judges.local.prompting import pairwise_pieces

        rows: list[Row] = []
        batch, members = [], []
        for unit in units:
            first, second = _shown(unit, contexts)
            try:
                pieces = pairwise_pieces(
                    judge.tokenizer, first.conversation, first.text, second.text,
                    judge_criteria(unit),
                )  # fmt: skip
                judge.check_fits(len(pieces.prefix) + len(s) for s in pieces.suffixes)
            except ValueError as exc:
                rows += self.failure_rows(unit, run, f"prompt: {exc}", None)
                continue
            batch.append((pieces.prefix, pieces.suffixes))
            members.append((unit, pieces))
        if not batch:
            return rows
        started = time.perf_counter()
        readings = judge.score_shared(batch, pairwise=True)
        latency = (time.perf_counter() - started) / len(members)
        for (unit, pieces), found in zip(members, readings, strict=True):
            rows.append(
                self._reading_row(
                    unit,
                    run,
                    found,
                    read_with(judge),
                    prompt_tokens=len(pieces.prefix) + sum(len(s) for s in pieces.suffixes),
                    latency=latency,
                )
            )
        return rows

    def _reading_row(
        self, unit: Unit, run: Run, found: list[Reading], extra: dict[str, Any], **values: Any
    ) -> Row:
        """The judgment of one order from its readings: the whole rubric's, then each
        criterion's."""
        overall, per_criterion = found[0], found[1:]
        detail = {
            **self.failure_detail(unit),
            "criteria": {i: verdict(r.probability) for i, r in enumerate(per_criterion, 1)},
            "criteria_p": {i: round(r.probability, 6) for i, r in enumerate(per_criterion, 1)},
            "mass": round(overall.mass, 6),
            **extra,
        }
        return judgment_row(
            unit,
            unit.keys[0],
            run,
            winner=verdict(overall.probability),
            probability=overall.probability,
            detail=detail,
            **values,
        )

    def questions(self, unit: Unit) -> int:
        return 1 + len(unit.criteria)

    async def judge_logprobs(
        self,
        gateway: Gateway,
        run: Run,
        unit: Unit,
        contexts: dict[int, Context],
        threshold: float,
    ) -> list[Row]:
        """P(A) for the whole rubric and for each criterion, one call each, read as a
        local judge reads them (the threshold is for criteria: a pair's verdict is the
        more likely letter)."""
        # The prompts are the local judge's (its prompting module is torch-free).
        from scoring.judges.local.prompting import pairwise_messages

        first, second = _shown(unit, contexts)
        try:
            questions = pairwise_messages(
                first.conversation, first.text, second.text, judge_criteria(unit)
            )
        except ValueError as exc:
            return self.failure_rows(unit, run, f"prompt: {exc}", None)
        read = await read_questions(gateway, run, questions, pairwise=True)
        if read.error:
            return self.failure_rows(unit, run, read.error, read.usage)
        return [
            self._reading_row(
                unit, run, read.readings, {"answer": read.answers[0]},
                **usage_fields(read.usage, read.latency),
            )
        ]  # fmt: skip
