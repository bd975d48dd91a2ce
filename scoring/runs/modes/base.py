"""What every judging mode of a scoring run has and does, and the run's unit of work.

A ``Unit`` is one call's worth of judging (one criterion of a response, a response on its
whole rubric, or one order of a pair); chunks store units as compact JSON (``to_stored``),
which SQL elsewhere reads (``scoring.datasets.kinds.judged``: ``$.crit[0].text``, ``$.k``)
and whose judgment keys are the cache of every later run, so the stored form never
changes. A ``JudgingMode`` plans the units of a prompt's responses, gives the messages of a
call and turns its answer (or its failure) into judgment rows, judges with a local model
where it can, and says how its judgments make a response's score.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from annotation.errors import ApplicationError
from scoring.engine import aggregate, judging
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import GatewayError, Usage
from scoring.runs.models import Judgment, Run

# Orders (pairwise) or responses (per criterion) a local judge scores between two writes:
# bounds the work lost to a crash and renews the chunk's lease as the rows are written.
LOCAL_SLICE = 64

Criterion = dict[str, Any]  # key, text, points, category, tags, version (as planned)
Row = dict[str, Any]  # a judgment's fields, as ``Judgment(**row)`` takes them
Write = Callable[[list[Row]], None]


def judgment_key(*parts: object) -> str:
    """The hash of everything that decides a judgment's outcome (stored: never change it)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def shown(criterion: Criterion) -> list[Any]:
    """What the judge is shown of a criterion: a change to any of it is a new judgment."""
    return [criterion["text"], criterion["points"], criterion.get("category", "")]


@dataclass(frozen=True, slots=True)
class Unit:
    """One call's worth of judging. Stored in a chunk as ``{"r", "s", "crit", "k"}`` (per
    criterion), ``{"r", "s", "crit", "keys"}`` (grouped, holistic) or ``{"r", "o", "pair",
    "order", "s", "crit", "k"}`` (pairwise), in that key order."""

    response_id: int  # the response judged (pairwise: the one shown first, as A)
    sample: int
    criteria: tuple[Criterion, ...]  # what the judge is shown of the rubric
    keys: tuple[str, ...]  # the keys of the judgments it gives, in criteria order
    listed_keys: bool = False  # stored as a list under "keys" (else one key under "k")
    other_id: int | None = None  # pairwise: the response shown second (as B)
    pair: tuple[int, int] | None = None  # pairwise: the pair as planned (a, b)
    order: str = ""  # pairwise: "ab" or "ba"

    @property
    def identity(self) -> str:
        """The unit's keys as one string (a unit is judged once per run)."""
        return "|".join(self.keys)

    def to_stored(self) -> dict[str, Any]:
        """The stored form: these keys, in this order (json.dumps writes them so)."""
        if self.other_id is not None:
            return {"r": self.response_id, "o": self.other_id, "pair": list(self.pair or ()),
                    "order": self.order, "s": self.sample, "crit": list(self.criteria),
                    "k": self.keys[0]}  # fmt: skip
        if self.listed_keys:
            return {"r": self.response_id, "s": self.sample, "crit": list(self.criteria),
                    "keys": list(self.keys)}  # fmt: skip
        return {"r": self.response_id, "s": self.sample, "crit": list(self.criteria),
                "k": self.keys[0]}  # fmt: skip

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Unit:
        listed = "keys" in stored
        pair = stored.get("pair")
        return cls(
            response_id=stored["r"],
            sample=stored["s"],
            criteria=tuple(stored["crit"]),
            keys=tuple(stored["keys"]) if listed else (stored["k"],),
            listed_keys=listed,
            other_id=stored.get("o"),
            pair=(pair[0], pair[1]) if pair else None,
            order=stored.get("order", ""),
        )


@dataclass(frozen=True)
class PlanSpec:
    """What a run's units are planned with, besides the responses and their rubric."""

    judge: str  # the judge's hash
    version: str  # the template version
    samples: int
    pair_plan: str = ""
    baseline_source: str = ""
    pairs_per_prompt: int = 3


@dataclass
class Context:
    """What the judge is shown of a response: its prompt's conversation and its text."""

    conversation: list[dict[str, str]]
    text: str


def judge_criteria(unit: Unit) -> list[judging.JudgeCriterion]:
    return [
        judging.JudgeCriterion(i, c["text"], c["points"], c.get("category", ""))
        for i, c in enumerate(unit.criteria, start=1)
    ]


def judgment_row(unit: Unit, key: str, run: Run, **values: Any) -> Row:
    return {
        "key": key,
        "mode": run.mode,
        "response_id": unit.response_id,
        "other_id": unit.other_id,
        "sample": unit.sample,
        "model": run.model,
        "template_version": run.template_version,
        **values,
    }


def usage_fields(usage: Usage, latency: float) -> dict[str, Any]:
    return {
        "calls": usage.calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost": usage.cost,
        "latency": latency,
    }


def read_with(judge: Any) -> dict[str, str]:
    """The dtype and device a local reading was made with, kept with the judgment."""
    return {"dtype": judge.dtype, "device": str(judge.device)}


Verdicts = list[tuple[Criterion, Judgment | None]]


class JudgingMode(ABC):
    """One of ``Run.Mode``: a subclass per mode, one instance each in the registry."""

    value: ClassVar[str]  # the Run.Mode it implements
    template: ClassVar[str]  # its prompt template (scoring/engine/prompts/judge-*.txt)
    chunk_size: ClassVar[int]  # at most this many units a chunk (LLM endpoints)
    # Units a chunk for a local judge (whole GPU batches); None: local judges cannot grade
    # in this mode (they read one probability per question).
    local_chunk_size: ClassVar[int | None] = None
    instruction_chars: ClassVar[int]  # the template's own characters, for the preview
    output_tokens_per_call: ClassVar[int]  # an answer's tokens, for the preview
    compares_pairs: ClassVar[bool] = False  # results are pairs (else response scores)

    # --- planning ---------------------------------------------------------------------

    @property
    def grades_locally(self) -> bool:
        return self.local_chunk_size is not None

    def template_version(self, *, local: bool) -> str:
        return self.local_template_version() if local else judging.TEMPLATE_VERSIONS[self.template]

    def local_template_version(self) -> str:
        raise ApplicationError("A local model cannot grade in this mode.")

    def check_options(self, *, pair_plan: str, baseline_source: str, pairs_per_prompt: int) -> None:
        """Raise ApplicationError for options this mode cannot run with."""
        return None  # every option goes, by default

    def pair_plan_for(self, pair_plan: str) -> str:
        """The pair plan a run of this mode records: the one given (a pairwise run's
        defaults to all pairs)."""
        return pair_plan

    @abstractmethod
    def plan_prompt(
        self, prompt_id: int, group: list[dict[str, Any]], rubric: list[Criterion], spec: PlanSpec
    ) -> Iterator[tuple[Unit, int]]:
        """The units of one prompt's responses (``group``: id, source, content and "seen",
        the hash of what the judge is shown of it), each with the characters it shows."""

    def estimate_tokens(self, input_chars: float, calls: int) -> tuple[int, int]:
        """Input and output tokens of ``calls`` calls showing ``input_chars`` characters
        (4 characters a token: offline, no tokenizer download)."""
        input_tokens = math.ceil((input_chars + self.instruction_chars * calls) / 4)
        return input_tokens, self.output_tokens_per_call * calls

    # --- judging through an LLM endpoint ----------------------------------------------

    @abstractmethod
    def messages(
        self, unit: Unit, contexts: dict[int, Context], secret: bytes
    ) -> list[dict[str, str]]:
        """The messages of the unit's call."""

    @abstractmethod
    def schema(self, unit: Unit) -> tuple[dict[str, Any], str]:
        """The JSON schema of the call's answer, and its name."""

    @abstractmethod
    def verdict_rows(self, unit: Unit, run: Run, result: Any) -> list[Row]:
        """The judgment rows of an answer; ValueError for one the rubric makes invalid."""

    async def judge(
        self, gateway: Gateway, run: Run, unit: Unit, contexts: dict[int, Context], secret: bytes
    ) -> list[Row]:
        """The judgment rows of one unit; a failure becomes rows with the error (never a
        verdict), carrying the usage of the billed answers it took."""
        result = None
        try:
            messages = self.messages(unit, contexts, secret)
            schema, name = self.schema(unit)
            result = await gateway.chat(
                messages,
                schema=schema,
                schema_name=name,
                template_version=run.template_version,
                temperature=run.temperature,
                # The judgment table, keyed by the same inputs, is a run's cache; the
                # gateway's result cache would add a blocking lookup per call (Redis) for
                # nothing.
                use_cache=False,
            )
            return self.verdict_rows(unit, run, result)
        except GatewayError as exc:
            error, usage = f"{exc.kind}: {exc.message}", exc.usage
        except ValueError as exc:  # an answer valid for the schema but not for the rubric
            error, usage = f"malformed: {exc}", result.usage if result is not None else Usage()
        return self.failure_rows(unit, run, error, usage)

    def failure_slots(self, unit: Unit) -> list[tuple[str, str | None]]:
        """The (key, criterion key) of each judgment a failed unit records."""
        return [(unit.keys[0], None)]

    def failure_detail(self, unit: Unit) -> dict[str, Any]:
        return {}

    def failure_rows(self, unit: Unit, run: Run, error: str, usage: Usage | None) -> list[Row]:
        """Rows with the error; the billed usage (none for a local judge) on the first."""
        rows = []
        for i, (key, criterion) in enumerate(self.failure_slots(unit)):
            billed = {} if usage is None else usage_fields(usage if i == 0 else Usage(), 0.0)
            rows.append(
                judgment_row(unit, key, run, criterion_key=criterion, error=error[:2000],
                             detail=self.failure_detail(unit), **billed)
            )  # fmt: skip
        return rows

    # --- judging with a local model (gpu workers) -------------------------------------

    def judge_local(
        self,
        judge: Any,
        run: Run,
        units: list[Unit],
        contexts: dict[int, Context],
        threshold: float,
        write: Write,
    ) -> None:
        """Judge ``units`` with a local model in slices, handing each slice's rows to
        ``write``."""
        raise ApplicationError("A local model cannot grade in this mode.")

    # --- judging with P(yes) from an OpenAI-compatible endpoint's logprobs -------------

    def questions(self, unit: Unit) -> int:
        """The yes/no (or A/B) questions a probability judge asks for the unit: a logprob
        judge makes one call for each."""
        return 1

    async def judge_logprobs(
        self,
        gateway: Gateway,
        run: Run,
        unit: Unit,
        contexts: dict[int, Context],
        threshold: float,
    ) -> list[Row]:
        """The judgment rows of one unit from the log-probabilities of one-token answers
        to the local judge's questions (``logprobs.read_questions``); a failure becomes
        rows with the error and the usage it cost, as in ``judge``."""
        raise ApplicationError("A P(yes)-from-logprobs judge cannot grade in this mode.")

    # --- results ----------------------------------------------------------------------

    def result_slots(self, unit: Unit) -> list[tuple[Criterion, str]]:
        """What each judgment of a unit is shown as in a response's verdicts, and its key."""
        return list(zip(unit.criteria, unit.keys, strict=False))

    def score(self, verdicts: Verdicts) -> float | None:
        """A response's score from its verdicts (all present and good)."""
        points = [c["points"] for c, _ in verdicts]
        return aggregate.healthbench_score(points, [j.met for _, j in verdicts if j is not None])

    def expected(self, verdicts: Verdicts) -> float | None:
        """A local judge's continuous score, where the mode has one."""
        return None
