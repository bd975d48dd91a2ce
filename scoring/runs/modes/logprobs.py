"""Grading by P(yes) read from an OpenAI-compatible endpoint's log-probabilities: each of a
unit's questions (the local judge's prompts, sent as chat messages) is one call for one
token at temperature 0 with its ``top_logprobs``, through the run's gateway (rate limits,
retries, concurrency cap, outbound checks, billing), and its reading is the answer-token
rule the local judge applies to its logits (``scoring.engine.answer_tokens``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from scoring.engine.answer_tokens import NoAnswerError, Reading, reading_from_top_logprobs
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import GatewayError, Usage
from scoring.runs.models import Run

__all__ = ["TOP_LOGPROBS", "Readings", "read_questions"]

# How many most likely first tokens a logprob judge reads (the most OpenAI allows, and
# vLLM's default --max-logprobs).
TOP_LOGPROBS = 20


@dataclass
class Readings:
    """A logprob judge's answers to a unit's questions: one reading and the answer token
    per question, or the error of the first question that got none; the usage of every
    billed answer either way, and the wall time of the whole."""

    readings: list[Reading]
    answers: list[str]
    usage: Usage
    latency: float
    error: str = ""


class _Unanswered(Exception):
    def __init__(self, error: str, usage: Usage) -> None:
        super().__init__(error)
        self.error, self.usage = error, usage


async def _read_one(
    gateway: Gateway, run: Run, messages: list[dict[str, str]], pairwise: bool
) -> tuple[Reading, str, Usage]:
    """One question: one token at temperature 0 with the top log-probabilities, read by
    the answer-token rule the local judge uses."""
    try:
        result = await gateway.chat(
            messages,
            template_version=run.template_version,
            temperature=0.0,
            max_tokens=1,
            top_logprobs=TOP_LOGPROBS,
            use_cache=False,  # the judgment table is the run's cache (see ``judge``)
        )
    except GatewayError as exc:
        raise _Unanswered(f"{exc.kind}: {exc.message}", exc.usage) from None
    if result.top_logprobs is None:
        raise _Unanswered(
            "malformed: the endpoint sent no top_logprobs for the answer token "
            "(it must support logprobs and top_logprobs)",
            result.usage,
        )
    try:
        found = reading_from_top_logprobs(result.top_logprobs, pairwise=pairwise)
    except NoAnswerError as exc:
        raise _Unanswered(f"no answer: {exc}", result.usage) from None
    except ValueError as exc:  # a NaN log-probability
        raise _Unanswered(f"malformed: {exc}", result.usage) from None
    return found, result.content, result.usage


async def read_questions(
    gateway: Gateway, run: Run, questions: list[list[dict[str, str]]], *, pairwise: bool
) -> Readings:
    """Ask every question of a unit concurrently (each call under the gateway's
    concurrency cap, rate limit and retries); a unit with one unanswered question has no
    readings, never a partial verdict."""
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_read_one(gateway, run, messages, pairwise) for messages in questions),
        return_exceptions=True,
    )
    latency = time.perf_counter() - started
    usage, error = Usage(), ""
    readings, answers = [], []
    for outcome in outcomes:
        if isinstance(outcome, _Unanswered):
            usage.add(outcome.usage)
            error = error or outcome.error
        elif isinstance(outcome, BaseException):
            raise outcome  # a bug, not an answer: the chunk fails and is retried
        else:
            found, answer, billed = outcome
            usage.add(billed)
            readings.append(found)
            answers.append(answer)
    if error:
        return Readings([], [], usage, latency, error)
    return Readings(readings, answers, usage, latency)
