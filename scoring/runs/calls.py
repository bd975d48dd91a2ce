"""Judging units through the API gateway: what the judge is shown of the units' responses,
one call per unit made by the run's mode (``scoring.runs.modes``: its verdicts, or rows
carrying the error and the billed usage; a logprob judge's unit is one call per question,
read for P(yes)), the calls of a chunk made concurrently with their rows written in
batches as they come, and the one event loop and Gateway per endpoint that a worker
process keeps across chunks.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings

from annotation.errors import ApplicationError
from annotation.prompts.models import Response
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import GatewayError
from scoring.judges.gateways import endpoint_config, gateway_for
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Judgment, Run
from scoring.runs.modes.base import Context, Unit
from scoring.runs.modes.registry import mode_for
from scoring.runs.recording import _write


def _contexts(units: list[Unit]) -> dict[int, Context]:
    ids = {u.response_id for u in units} | {u.other_id for u in units if u.other_id is not None}
    rows = Response.objects.filter(pk__in=ids).select_related("prompt")
    return {r.pk: Context(r.prompt.messages, r.content) for r in rows}


WRITE_BATCH = 32
_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgment-writer")


async def _judge_and_write(
    gateway: Gateway,
    run: Run,
    units: list[Unit],
    ctx: dict[int, Context],
    failed: dict[str, Judgment],
    mine: Any,
    threshold: float,
) -> list[dict[str, Any]]:
    """Judge the units concurrently and store the judgments as they come, in batches. With
    SCORING_WRITE_THREAD (the default) a thread writes each batch while the calls go on,
    so a worker's slots never wait for the database; without it (tests whose data lives in
    their own transaction, which another connection cannot see) they are written after
    the calls: the rows come back for the caller to write. ``threshold``: the endpoint's,
    for a logprob judge's run (``Run.reads_logprobs``): met when P(yes) reaches it."""
    secret = settings.SECRET_KEY.encode()
    judging_mode = mode_for(run.mode)
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

    async def one(unit: Unit) -> None:
        if run.reads_logprobs:
            rows = await judging_mode.judge_logprobs(gateway, run, unit, ctx, threshold)
        else:
            rows = await judging_mode.judge(gateway, run, unit, ctx, secret)
        pending.extend(rows)
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
