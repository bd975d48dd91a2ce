"""Judging units through the API gateway: what the judge is shown of each unit, one call
per unit (its verdicts, or rows carrying the error and the billed usage), the calls of a
chunk made concurrently with their rows written in batches as they come, and the one
event loop and Gateway per endpoint that a worker process keeps across chunks.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from annotation.errors import ApplicationError
from annotation.prompts.models import Response
from scoring.engine import judging
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import GatewayError, Usage
from scoring.judges.gateways import endpoint_config, gateway_for
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Judgment, Run
from scoring.runs.planning import Mode
from scoring.runs.recording import _write


@dataclass
class _Context:
    conversation: list[dict[str, str]]
    text: str


def _contexts(units: list[dict[str, Any]]) -> dict[int, _Context]:
    ids = {u["r"] for u in units} | {u["o"] for u in units if "o" in u}
    rows = Response.objects.filter(pk__in=ids).select_related("prompt")
    return {r.pk: _Context(r.prompt.messages, r.content) for r in rows}


def _criteria(unit: dict[str, Any]) -> list[judging.JudgeCriterion]:
    return [
        judging.JudgeCriterion(i, c["text"], c["points"], c.get("category", ""))
        for i, c in enumerate(unit["crit"], start=1)
    ]


def _row(unit: dict[str, Any], key: str, run: Run, **values: Any) -> dict[str, Any]:
    return {
        "key": key,
        "mode": run.mode,
        "response_id": unit["r"],
        "other_id": unit.get("o"),
        "sample": unit["s"],
        "model": run.model,
        "template_version": run.template_version,
        **values,
    }


def _usage_fields(usage: Usage, latency: float) -> dict[str, Any]:
    return {
        "calls": usage.calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost": usage.cost,
        "latency": latency,
    }


async def _judge(
    gateway: Gateway, run: Run, unit: dict[str, Any], ctx: dict[int, _Context], secret: bytes
) -> list[dict[str, Any]]:
    """The judgment rows of one unit; a failure becomes rows with the error (never a
    verdict), carrying the usage of the billed answers it took."""
    mode, criteria = run.mode, _criteria(unit)
    response = ctx[unit["r"]]
    result = None
    keys = unit.get("keys", [unit.get("k")])
    options = {
        "template_version": run.template_version,
        "temperature": run.temperature,
        # The judgment table, keyed by the same inputs, is a run's cache; the gateway's
        # result cache would add a blocking lookup per call (Redis) for nothing.
        "use_cache": False,
    }
    try:
        if mode == Mode.PER_CRITERION:
            c = unit["crit"][0]
            messages = judging.criterion_messages(
                response.conversation, response.text, criteria[0], secret=secret
            )
            result = await gateway.chat(
                messages, schema=judging.CRITERION_SCHEMA, schema_name="verdict", **options
            )
            verdict = result.parsed
            return [
                _row(unit, keys[0], run, criterion_key=c["key"], met=verdict["criteria_met"],
                     explanation=verdict["explanation"], **_usage_fields(result.usage, result.latency))
            ]  # fmt: skip
        if mode == Mode.GROUPED:
            messages = judging.grouped_messages(
                response.conversation, response.text, criteria, secret=secret
            )
            result = await gateway.chat(
                messages, schema=judging.grouped_schema(len(criteria)), schema_name="verdicts",
                **options,
            )  # fmt: skip
            verdicts = judging.parse_grouped(result.parsed, len(criteria))
            rows = []
            for i, ((met, why), c) in enumerate(zip(verdicts, unit["crit"], strict=True)):
                usage = result.usage if i == 0 else Usage()  # the one call's cost, once
                rows.append(
                    _row(unit, keys[i], run, criterion_key=c["key"], met=met, explanation=why,
                         **_usage_fields(usage, result.latency))
                )  # fmt: skip
            return rows
        if mode == Mode.HOLISTIC:
            messages = judging.holistic_messages(
                response.conversation, response.text, criteria, secret=secret
            )
            result = await gateway.chat(
                messages, schema=judging.HOLISTIC_SCHEMA, schema_name="rating", **options
            )
            return [
                _row(unit, keys[0], run, rating=result.parsed["rating"],
                     explanation=result.parsed["explanation"],
                     **_usage_fields(result.usage, result.latency))
            ]  # fmt: skip
        other = ctx[unit["o"]]
        messages = judging.pairwise_messages(
            response.conversation, response.text, other.text, criteria, secret=secret
        )
        result = await gateway.chat(
            messages, schema=judging.pairwise_schema(len(criteria)), schema_name="comparison",
            **options,
        )  # fmt: skip
        winner, per_criterion, why = judging.parse_pairwise(result.parsed, len(criteria))
        detail = {"order": unit["order"], "pair": unit["pair"], "criteria": per_criterion}
        return [
            _row(unit, keys[0], run, winner=winner, detail=detail, explanation=why,
                 **_usage_fields(result.usage, result.latency))
        ]  # fmt: skip
    except GatewayError as exc:
        error, usage = f"{exc.kind}: {exc.message}", exc.usage
    except ValueError as exc:  # an answer valid for the schema but not for the rubric
        error, usage = f"malformed: {exc}", result.usage if result is not None else Usage()
    if mode == Mode.GROUPED:
        slots = list(zip(keys, [c["key"] for c in unit["crit"]], strict=True))
    elif mode == Mode.PER_CRITERION:
        slots = [(keys[0], unit["crit"][0]["key"])]
    else:
        slots = [(keys[0], None)]
    detail = {"order": unit["order"], "pair": unit["pair"]} if mode == Mode.PAIRWISE else {}
    return [
        _row(unit, key, run, criterion_key=criterion, error=error[:2000], detail=detail,
             **_usage_fields(usage if i == 0 else Usage(), 0.0))
        for i, (key, criterion) in enumerate(slots)
    ]  # fmt: skip


WRITE_BATCH = 32
_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgment-writer")


async def _judge_and_write(
    gateway: Gateway,
    run: Run,
    units: list[dict[str, Any]],
    ctx: dict[int, _Context],
    failed: dict[str, Judgment],
    mine: Any,
) -> list[dict[str, Any]]:
    """Judge the units concurrently and store the judgments as they come, in batches. With
    SCORING_WRITE_THREAD (the default) a thread writes each batch while the calls go on,
    so a worker's slots never wait for the database; without it (tests whose data lives in
    their own transaction, which another connection cannot see) they are written after
    the calls: the rows come back for the caller to write."""
    secret = settings.SECRET_KEY.encode()
    threaded = settings.SCORING_WRITE_THREAD
    loop = asyncio.get_running_loop()
    pending: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    writes: list[asyncio.Future[None]] = []

    def flush() -> None:
        batch = pending[:]
        pending.clear()
        if threaded:
            writes.append(loop.run_in_executor(_writer, _write, run, batch, failed, mine))
        else:
            held.extend(batch)

    async def one(unit: dict[str, Any]) -> None:
        pending.extend(await _judge(gateway, run, unit, ctx, secret))
        if len(pending) >= WRITE_BATCH:
            flush()

    async with asyncio.TaskGroup() as group:  # one failure cancels the others
        for unit in units:
            group.create_task(one(unit))
    flush()
    await asyncio.gather(*writes)
    return held


_worker: dict[str, Any] = {}


def _worker_gateway(endpoint: JudgeEndpoint) -> tuple[asyncio.AbstractEventLoop, Gateway]:
    """One event loop per worker process, and one Gateway per endpoint on it, kept across
    chunks: open connections, the rate window and the format fallback carry over, and a
    chunk starts judging at once (setting them up per chunk cost a tenth of the
    throughput). A changed endpoint (or key) gets a new Gateway."""
    loop = _worker.get("loop")
    if loop is None or loop.is_closed():
        loop = _worker["loop"] = asyncio.new_event_loop()
        _worker["gateways"] = {}
    config = endpoint_config(endpoint)  # raises ApplicationError for a missing key variable
    signature = (endpoint.pk, repr(config), hash(config.api_key))
    gateways: dict[Any, Gateway] = _worker["gateways"]
    gateway = gateways.get(signature)
    if gateway is None:
        for old_signature in [k for k in gateways if k[0] == endpoint.pk]:
            loop.run_until_complete(gateways.pop(old_signature).aclose())
        try:
            gateway = gateways[signature] = gateway_for(endpoint)
        except GatewayError as exc:
            raise ApplicationError(exc.message) from None
    return loop, gateway
