"""Scoring runs: plan the units (responses × criteria × samples, or response pairs in both
orders), cut them into chunks, and judge each chunk in a Celery task that runs its calls
concurrently within the endpoint's limits.

Exactly-once by construction: a chunk is claimed with a status-guarded update (a lease lets
another worker take over a chunk whose worker died); every judgment has a unique key, so a
redelivered chunk finds what was already written and adds nothing twice; a judgment whose
key exists and succeeded is reused by any later run (shown as reused, costing nothing).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.models import Response
from annotation.rubrics.models import Criterion, Rubric
from scoring.engine import judging, pairwise
from scoring.engine.gateway import Gateway, GatewayError, Usage
from scoring.judges.gateways import endpoint_config, gateway_for
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment

logger = logging.getLogger(__name__)
Mode = Run.Mode
TEMPLATE = {
    Mode.PER_CRITERION: "criterion",
    Mode.GROUPED: "grouped",
    Mode.HOLISTIC: "holistic",
    Mode.PAIRWISE: "pairwise",
}
CHUNK_SIZE = {Mode.PER_CRITERION: 500, Mode.GROUPED: 100, Mode.HOLISTIC: 100, Mode.PAIRWISE: 100}
# A local judge's chunk feeds whole GPU batches (a response's criteria stay together but
# for the one a chunk boundary cuts); gpu workers are few, so there is no spreading to do.
LOCAL_CHUNK_SIZE = {Mode.PER_CRITERION: 1000, Mode.PAIRWISE: 200}
MAX_UNITS = 2_000_000


def chunk_size(mode: str, endpoint: JudgeEndpoint, units: int) -> int:
    """Chunks small enough to spread evenly over the worker processes (about eight rounds
    each: the last round is where processes sit idle) and large enough to hold four waves
    of a process's share of the endpoint's concurrency; at most CHUNK_SIZE[mode]."""
    if is_local(endpoint):
        return LOCAL_CHUNK_SIZE[mode]
    processes = max(1, settings.LLM_PROCESS_SHARE)
    per_process = max(1, endpoint.max_concurrency // processes)
    balanced = math.ceil(units / (8 * processes))
    return max(4 * per_process, min(CHUNK_SIZE[mode], balanced), 1)


def chunk_lease() -> timedelta:
    """How long a claimed chunk belongs to its worker before another may take it over."""
    return timedelta(seconds=settings.SCORING_CHUNK_LEASE)


def is_local(endpoint: JudgeEndpoint | None) -> bool:
    return endpoint is not None and endpoint.backend == JudgeEndpoint.Backend.LOCAL


def template_version(endpoint: JudgeEndpoint, mode: str) -> str:
    if is_local(endpoint):
        from scoring.judges.local.prompting import template_version as local_version

        return local_version(mode == Mode.PAIRWISE)
    return judging.TEMPLATE_VERSIONS[TEMPLATE[mode]]


def judge_hash(endpoint: JudgeEndpoint, temperature: float | None) -> str:
    """What about the judge decides a verdict: the server, model and sampling parameters;
    for a local model its directory, dtype, device and threshold (bf16 readings differ
    from fp32 ones, and with the batch they were read in, at the 1e-2 level)."""
    if is_local(endpoint):
        local = {
            "backend": "local",
            "model_path": endpoint.model_path,
            "dtype": endpoint.dtype,
            "device": endpoint.device,
            "threshold": endpoint.threshold,
        }
        return hashlib.sha256(json.dumps(local, sort_keys=True).encode()).hexdigest()
    spec = {
        "base_url": endpoint.base_url.rstrip("/"),
        "model": endpoint.model,
        "temperature": endpoint.temperature if temperature is None else temperature,
        "max_tokens": endpoint.max_tokens,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


# --- planning -----------------------------------------------------------------------------


@dataclass
class Plan:
    units: list[dict[str, Any]]
    judgments: int  # verdicts the units produce (a grouped unit gives one per criterion)
    calls: int
    responses: int
    input_chars: int


def _criteria_by_prompt(
    project: Project, prompt_ids: set[int], policy: str
) -> dict[int | None, list[dict[str, Any]]]:
    """Each prompt's effective rubric (project-wide criteria, then its own), from the
    approved or the current version; None holds the project-wide criteria alone."""
    field = "approved_version_id" if policy == Run.Versions.APPROVED else "current_version_id"
    rubrics = Rubric.objects.filter(project=project).filter(
        Q(prompt__isnull=True) | Q(prompt_id__in=prompt_ids)
    )
    rubrics = rubrics.exclude(status=Rubric.Status.ARCHIVED).values("prompt_id", field)
    version_of = {r["prompt_id"]: r[field] for r in rubrics if r[field] and r["prompt_id"]}
    wide = [r[field] for r in rubrics if r[field] and r["prompt_id"] is None]
    rows = Criterion.objects.filter(version_id__in=[*version_of.values(), *wide]).order_by(
        "version_id", "position"
    )
    by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for c in rows:
        by_version[c.version_id].append(
            {
                "key": str(c.key),
                "text": c.text,
                "points": c.points,
                "category": c.category,
                "tags": list(c.tags),
                "version": c.version_id,  # where it came from (not part of any key)
            }  # fmt: skip
        )
    shared = [c for v in wide for c in by_version[v]]
    out: dict[int | None, list[dict[str, Any]]] = {None: shared}
    for prompt_id, version_id in version_of.items():
        out[prompt_id] = [*shared, *by_version[version_id]]
    return out


def plan_units(
    *,
    project: Project,
    endpoint: JudgeEndpoint,
    mode: str,
    sources: list[str],
    prompt_ids: list[int],
    versions: str,
    samples: int,
    temperature: float | None,
    pair_plan: str = "",
    baseline_source: str = "",
    pairs_per_prompt: int = 3,
) -> Plan:
    """Every unit of work of a run, with its judgment keys, in a deterministic order."""
    responses = Response.objects.filter(prompt__project=project).order_by("prompt_id", "id")
    if sources:
        responses = responses.filter(source__in=sources)
    if prompt_ids:
        responses = responses.filter(prompt_id__in=prompt_ids)
    _check_options(mode, samples, pair_plan, baseline_source, pairs_per_prompt)
    if is_local(endpoint):
        _check_local(endpoint, mode, samples, temperature)
    rows = list(
        responses.values("id", "prompt_id", "source", "content_hash", "content", "prompt__messages")
    )
    for row in rows:  # what the judge is shown of a response: its text and its conversation
        row["seen"] = _key(row["id"], row["content_hash"], row.pop("prompt__messages"))
    criteria = _criteria_by_prompt(project, {r["prompt_id"] for r in rows}, versions)
    judge = judge_hash(endpoint, temperature)
    version = template_version(endpoint, mode)
    units: list[dict[str, Any]] = []
    judgments = chars = 0
    by_prompt: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[row["prompt_id"]].append(row)
    for prompt_id, group in by_prompt.items():
        rubric = criteria.get(prompt_id, criteria[None])
        if not rubric:  # no (approved) rubric: nothing to judge against
            continue
        texts = [c["text"] for c in rubric]
        shown = [_shown(c) for c in rubric]
        if mode == Mode.PAIRWISE:
            pairs = _pairs(group, pair_plan, baseline_source, pairs_per_prompt, prompt_id)
            by_id = {r["id"]: r for r in group}
            for a, b in pairs:
                for sample in range(samples):
                    for order, (first, second) in (("ab", (a, b)), ("ba", (b, a))):
                        key = _key(mode, by_id[first]["seen"], by_id[second]["seen"],
                                   shown, judge, version, sample)  # fmt: skip
                        units.append({"r": first, "o": second, "pair": [a, b], "order": order,
                                      "s": sample, "crit": rubric, "k": key})  # fmt: skip
                        judgments += 1
                        chars += len(by_id[a]["content"]) + len(by_id[b]["content"])
            if len(units) > MAX_UNITS:
                raise ApplicationError(f"A run holds at most {MAX_UNITS:,} units; narrow it down.")
            continue
        for row in group:
            for sample in range(samples):
                if mode == Mode.PER_CRITERION:
                    for c in rubric:
                        key = _key(mode, row["seen"], _shown(c), judge, version, sample)
                        units.append({"r": row["id"], "s": sample, "crit": [c], "k": key})
                        judgments += 1
                        chars += len(row["content"]) + len(c["text"])
                else:
                    keys = (
                        [
                            _key(mode, row["seen"], shown, i, judge, version, sample)
                            for i in range(len(rubric))
                        ]  # fmt: skip
                        if mode == Mode.GROUPED
                        else [_key(mode, row["seen"], shown, judge, version, sample)]
                    )
                    units.append({"r": row["id"], "s": sample, "crit": rubric, "keys": keys})
                    judgments += len(keys)
                    chars += len(row["content"]) + sum(map(len, texts))
        if len(units) > MAX_UNITS:
            raise ApplicationError(f"A run holds at most {MAX_UNITS:,} units; narrow it down.")
    if not rows:
        raise ApplicationError(
            "No responses to judge: import responses (e.g. a preference or generic file) first."
        )
    if not units:
        raise ApplicationError(
            f"Nothing to judge: none of the {len(rows)} selected responses has a rubric"
            + (" with an approved version." if versions == Run.Versions.APPROVED else ".")
        )
    return Plan(units, judgments, len(units), len(rows), chars)


def _shown(criterion: dict[str, Any]) -> list[Any]:
    """What the judge is shown of a criterion: a change to any of it is a new judgment."""
    return [criterion["text"], criterion["points"], criterion.get("category", "")]


def _check_options(
    mode: str, samples: int, pair_plan: str, baseline_source: str, pairs_per_prompt: int
) -> None:
    if mode not in Mode.values:
        raise ApplicationError(f"Unknown mode “{mode}”.")
    if not 1 <= samples <= 20:
        raise ApplicationError("Samples per judgment are between 1 and 20.")
    if mode == Mode.PAIRWISE:
        if pair_plan and pair_plan not in Run.PairPlan.values:
            raise ApplicationError(f"Unknown pair plan “{pair_plan}”.")
        if pair_plan == Run.PairPlan.BASELINE and not baseline_source:
            raise ApplicationError("Name the baseline source to compare every source against.")
        if not 1 <= pairs_per_prompt <= 1000:
            raise ApplicationError("Pairs per prompt are between 1 and 1000.")


def _pairs(
    group: list[dict[str, Any]], plan: str, baseline: str, k: int, prompt_id: int
) -> list[tuple[int, int]]:
    responses = [(r["id"], r["source"]) for r in group]
    if plan == Run.PairPlan.BASELINE:
        return pairwise.plan_vs_baseline(responses, baseline)
    if plan == Run.PairPlan.SAMPLED:
        return pairwise.plan_sampled(responses, k, seed=prompt_id)
    return pairwise.plan_all_pairs(responses)


# --- preview and launch -------------------------------------------------------------------


@dataclass
class RunPreview:
    responses: int
    judgments: int
    calls: int
    reusable: int
    input_tokens: int
    output_tokens: int
    cost: float
    seconds: float | None  # None: a local judge, whose speed is the GPU's


INSTRUCTION_CHARS = {
    Mode.PER_CRITERION: 1400,
    Mode.GROUPED: 1600,
    Mode.HOLISTIC: 1500,
    Mode.PAIRWISE: 1800,
}
OUTPUT_TOKENS = {Mode.PER_CRITERION: 120, Mode.GROUPED: 60, Mode.HOLISTIC: 150, Mode.PAIRWISE: 200}


def preview(plan: Plan, *, endpoint: JudgeEndpoint, mode: str) -> RunPreview:
    """Calls, tokens (4 characters a token: offline, no tokenizer download), cost from the
    endpoint's prices and the time its concurrency and rate limits allow at 2 s a call;
    judgments already made with the same inputs are reused and cost nothing."""
    keys = [k for u in plan.units for k in u.get("keys", [u.get("k")])]
    reusable = sum(
        Judgment.objects.filter(key__in=keys[i : i + 5000], error="").count()
        for i in range(0, len(keys), 5000)
    )
    share = 1 - (reusable / plan.judgments if plan.judgments else 0)
    calls = math.ceil(plan.calls * share)
    if is_local(endpoint):  # forward passes on the GPU workers: no bill, no rate limits
        input_tokens = math.ceil(plan.input_chars * share / 4)
        return RunPreview(plan.responses, plan.judgments, calls, reusable, input_tokens, 0,
                          0.0, None)  # fmt: skip
    input_tokens = math.ceil((plan.input_chars * share + INSTRUCTION_CHARS[mode] * calls) / 4)
    per_call_out = OUTPUT_TOKENS[mode] * (1 if mode != Mode.GROUPED else 10)
    output_tokens = per_call_out * calls
    cost = (
        input_tokens * endpoint.price_input_per_m + output_tokens * endpoint.price_output_per_m
    ) / 1e6
    per_second = endpoint.max_concurrency / 2.0
    if endpoint.rpm:
        per_second = min(per_second, endpoint.rpm / 60)
    if endpoint.tpm and calls:
        per_second = min(per_second, endpoint.tpm / 60 / ((input_tokens + output_tokens) / calls))
    return RunPreview(plan.responses, plan.judgments, calls, reusable, input_tokens,
                      output_tokens, cost, calls / per_second if calls else 0.0)  # fmt: skip


@transaction.atomic
def run_create(  # type: ignore[no-untyped-def]
    *,
    project: Project,
    actor,
    endpoint: JudgeEndpoint,
    mode: str,
    sources: list[str] | None = None,
    prompt_ids: list[int] | None = None,
    versions: str = Run.Versions.LATEST,
    samples: int = 1,
    temperature: float | None = None,
    pair_plan: str = "",
    baseline_source: str = "",
    pairs_per_prompt: int = 3,
    budget: float | None = None,
    name: str = "",
) -> Run:
    """Plan the run, store its chunks and queue them once this transaction commits."""
    if versions not in Run.Versions.values:
        raise ApplicationError(f"Unknown version policy “{versions}”.")
    if temperature is not None and not 0 <= temperature <= 2:
        raise ApplicationError("The temperature is between 0 and 2.")
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise ApplicationError("A budget is a positive amount (leave it empty for none).")
    if mode == Mode.PAIRWISE:
        pair_plan = pair_plan or Run.PairPlan.ALL
    plan = plan_units(
        project=project, endpoint=endpoint, mode=mode, sources=list(sources or []),
        prompt_ids=list(prompt_ids or []), versions=versions, samples=samples,
        temperature=temperature, pair_plan=pair_plan, baseline_source=baseline_source,
        pairs_per_prompt=pairs_per_prompt,
    )  # fmt: skip
    run = Run.objects.create(
        project=project, endpoint=endpoint, created_by=actor, name=name[:200], mode=mode,
        versions=versions, sources=list(sources or []), prompt_ids=list(prompt_ids or []),
        samples=samples, temperature=temperature, pair_plan=pair_plan,
        baseline_source=baseline_source, pairs_per_prompt=pairs_per_prompt, budget=budget,
        model=endpoint.model, template_version=template_version(endpoint, mode),
        judge_hash=judge_hash(endpoint, temperature), total=plan.judgments,
    )  # fmt: skip
    size = chunk_size(mode, endpoint, len(plan.units))
    RunChunk.objects.bulk_create(
        RunChunk(run=run, index=i, units=plan.units[start : start + size])
        for i, start in enumerate(range(0, len(plan.units), size))
    )
    audit(project=project, actor=actor, action="run.create", target=str(run.pk), mode=mode)
    _enqueue(run, range(math.ceil(len(plan.units) / size)))
    return run


def _check_local(
    endpoint: JudgeEndpoint, mode: str, samples: int, temperature: float | None
) -> None:
    """A local judge reads one probability per question: per criterion or pairwise, and
    deterministic (no samples, no temperature)."""
    if mode not in (Mode.PER_CRITERION, Mode.PAIRWISE):
        raise ApplicationError(
            f"“{endpoint.name}” is a local model: it grades per criterion or pairwise "
            "(grouped and holistic grading need a generating LLM endpoint)."
        )
    if samples != 1 or temperature is not None:
        raise ApplicationError(
            f"“{endpoint.name}” is a local model: its probabilities are deterministic, so "
            "one sample and no temperature."
        )


def unit_key(unit: dict[str, Any]) -> str:
    return "|".join(unit.get("keys", [unit.get("k", "")]))


def _enqueue(run: Run, indexes: Iterable[int]) -> None:
    from scoring.runs.tasks import score_chunk

    indexes = list(indexes)
    queue = "gpu" if run.is_local else settings.CELERY_TASK_DEFAULT_QUEUE
    transaction.on_commit(
        lambda: [score_chunk.apply_async((run.pk, i), queue=queue) for i in indexes]
    )


# --- run control --------------------------------------------------------------------------


@transaction.atomic
def run_pause(*, run: Run, actor) -> None:  # type: ignore[no-untyped-def]
    Run.objects.filter(pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).update(
        status=Run.Status.PAUSED, note="Paused by a person."
    )
    audit(project=run.project, actor=actor, action="run.pause", target=str(run.pk))


@transaction.atomic
def run_cancel(*, run: Run, actor) -> None:  # type: ignore[no-untyped-def]
    Run.objects.filter(pk=run.pk).exclude(
        status__in=[Run.Status.DONE, Run.Status.CANCELLED]
    ).update(status=Run.Status.CANCELLED, finished_at=timezone.now())
    audit(project=run.project, actor=actor, action="run.cancel", target=str(run.pk))


@transaction.atomic
def run_resume(*, run: Run, actor, budget: float | None = None) -> None:  # type: ignore[no-untyped-def]
    """Queue every chunk not done: paused ones, and running ones whose lease ran out (their
    worker died). A raised budget lets a run paused at its budget go on."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status in (Run.Status.DONE, Run.Status.CANCELLED):
        raise ApplicationError(f"This run is {run.get_status_display().lower()}.")
    if budget is not None:
        if budget <= run.cost:
            raise ApplicationError(f"The new budget must be above the ${run.cost:.4f} spent.")
        run.budget = budget
    elif run.budget is not None and run.cost >= run.budget:
        raise ApplicationError("The run reached its budget: raise the budget to go on.")
    run.status, run.note = Run.Status.RUNNING, ""
    run.save(update_fields=["status", "note", "budget"])
    stale = timezone.now() - chunk_lease()
    RunChunk.objects.filter(run=run, status=RunChunk.Status.RUNNING, claimed_at__lt=stale).update(
        status=RunChunk.Status.QUEUED
    )
    queued = RunChunk.objects.filter(run=run, status=RunChunk.Status.QUEUED)
    _enqueue(run, queued.values_list("index", flat=True))
    _refresh(run, finish=True)  # a run paused after its last chunk has nothing left to do
    audit(project=run.project, actor=actor, action="run.resume", target=str(run.pk))


@transaction.atomic
def run_retry_failed(*, run: Run, actor) -> int:  # type: ignore[no-untyped-def]
    """Judge again every unit whose judgment failed in this run (one new chunk)."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status not in (Run.Status.DONE, Run.Status.FAILED):
        raise ApplicationError("Retry failed judgments once the run has ended (or resume it).")
    failed = Judgment.objects.filter(
        pk__in=RunJudgment.objects.filter(run=run).values("judgment_id")
    ).exclude(error="")
    keys = set(failed.values_list("key", flat=True))
    if not keys:
        raise ApplicationError("No judgment of this run failed.")
    units = list(
        {
            unit_key(u): u
            for chunk in run.chunks.filter(retry=False)
            for u in chunk.units
            if keys & set(u.get("keys", [u.get("k")]))
        }.values()
    )  # the failed rows are judged again and updated in place (see `_write`)
    index = (run.chunks.order_by("-index").values_list("index", flat=True).first() or 0) + 1
    RunChunk.objects.create(run=run, index=index, units=units, retry=True)
    queued = RunChunk.objects.filter(run=run, status=RunChunk.Status.QUEUED).exclude(index=index)
    run.status, run.finished_at, run.note = Run.Status.RUNNING, None, ""
    run.save(update_fields=["status", "finished_at", "note"])
    _refresh(run)
    _enqueue(run, [index, *queued.values_list("index", flat=True)])
    audit(project=run.project, actor=actor, action="run.retry_failed", target=str(run.pk))
    return len(units)


# --- executing a chunk --------------------------------------------------------------------


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


def chunk_run(run_id: int, index: int) -> None:
    """Claim chunk ``index`` of a run and judge what it still needs. Safe to repeat."""
    now = timezone.now()
    claimable = Q(status=RunChunk.Status.QUEUED) | Q(
        status=RunChunk.Status.RUNNING, claimed_at__lt=now - chunk_lease()
    )
    claimed = (
        RunChunk.objects.filter(run_id=run_id, index=index)
        .filter(claimable)
        .update(status=RunChunk.Status.RUNNING, claimed_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return
    run = Run.objects.select_related("endpoint", "project").get(pk=run_id)
    chunk = RunChunk.objects.get(run=run, index=index)
    mine = RunChunk.objects.filter(pk=chunk.pk, attempts=chunk.attempts)  # while it is ours
    if run.status not in (Run.Status.QUEUED, Run.Status.RUNNING) or _over_budget(run):
        if run.status != Run.Status.CANCELLED:
            mine.update(status=RunChunk.Status.QUEUED)
        return
    Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    try:
        _process(run, chunk, mine)
    except ApplicationError as exc:
        mine.update(status=RunChunk.Status.QUEUED)  # ready for a resume once it is fixed
        _fail(run, exc.message)
        return
    except Exception as exc:
        logger.exception("scoring run %s, chunk %s", run.pk, index)
        mine.update(status=RunChunk.Status.QUEUED)
        _fail(run, f"Internal error: {exc}")
        raise
    if mine.update(status=RunChunk.Status.DONE):  # not if another worker took it over
        _refresh(run, finish=True)


def _over_budget(run: Run) -> bool:
    if run.budget is None or run.cost < run.budget:
        return False
    Run.objects.filter(pk=run.pk, status__in=[Run.Status.QUEUED, Run.Status.RUNNING]).update(
        status=Run.Status.PAUSED, note=f"Paused: the budget of ${run.budget:.4f} is reached."
    )
    return True


def _process(run: Run, chunk: RunChunk, mine: Any) -> None:
    units = chunk.units
    keys = [k for u in units for k in u.get("keys", [u.get("k")])]
    existing = {j.key: j for j in Judgment.objects.filter(key__in=keys)}
    good = {k: j for k, j in existing.items() if not j.error}
    RunJudgment.objects.bulk_create(
        [RunJudgment(run=run, judgment=j, reused=j.created_by_run_id != run.pk) for j in good.values()],
        ignore_conflicts=True,
    )  # fmt: skip
    todo = [u for u in units if not all(k in good for k in u.get("keys", [u.get("k")]))]
    if not todo:
        return
    if run.endpoint is None:
        raise ApplicationError("The run's judge endpoint was deleted.")
    if judge_hash(run.endpoint, run.temperature) != run.judge_hash or run.is_local != is_local(
        run.endpoint
    ):
        # Its answers would be stored under this run's keys, as if the old judge gave them.
        raise ApplicationError(
            f"The judge endpoint “{run.endpoint.name}” was changed since this run started "
            "(server, model, parameters or backend): start a new run to use it."
        )
    failed = {k: j for k, j in existing.items() if j.error}  # judged again, updated in place
    if run.is_local:
        _process_local(run, run.endpoint, todo, failed, mine)
        return
    loop, gateway = _worker_gateway(run.endpoint)
    held = loop.run_until_complete(
        _judge_and_write(gateway, run, todo, _contexts(todo), failed, mine)
    )
    if held:  # written here, outside the event loop, on this connection
        _write(run, held, failed, mine)


def _process_local(
    run: Run,
    endpoint: JudgeEndpoint,
    units: list[dict[str, Any]],
    failed: dict[str, Judgment],
    mine: Any,
) -> None:
    """Judge with this worker's local model; rows are written slice by slice."""
    from scoring.runs import local as local_runs

    judge = local_runs.load(endpoint)
    mine.update(claimed_at=timezone.now())  # loading a model can take a while: renew

    def make_row(unit: dict[str, Any], key: str, **values: Any) -> dict[str, Any]:
        return _row(unit, key, run, **values)

    local_runs.judge_units(
        judge, run, units, _contexts(units), make_row, endpoint.threshold,
        lambda rows: _write(run, rows, failed, mine),
    )  # fmt: skip


USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "cached_tokens", "cost")
VERDICT_FIELDS = (
    "met", "probability", "rating", "winner", "detail", "explanation", "error", "latency",
)  # fmt: skip


def _write(run: Run, rows: list[dict[str, Any]], failed: dict[str, Judgment], mine: Any) -> None:
    """Store judgments and link them to the run. A key already judged well wins; a key
    whose earlier judgment failed is updated in place (its runs keep their link) with the
    billed usage of both attempts. Renews the chunk's claim."""
    if settings.SCORING_WRITE_THREAD:
        close_old_connections()  # the writer thread's connection may have gone stale
    retried = [row for row in rows if row["key"] in failed]
    for row in retried:
        before = failed[row["key"]]
        changes = {f: row.get(f, Judgment._meta.get_field(f).get_default()) for f in VERDICT_FIELDS}
        changes.update({f: getattr(before, f) + row.get(f, 0) for f in USAGE_FIELDS})
        Judgment.objects.filter(pk=before.pk, error=before.error).update(**changes)
    Judgment.objects.bulk_create(
        [Judgment(created_by_run=run, **row) for row in rows if row["key"] not in failed],
        ignore_conflicts=True,
    )
    mine.update(claimed_at=timezone.now())
    made = Judgment.objects.filter(key__in=[row["key"] for row in rows]).only(
        "pk", "created_by_run_id"
    )
    RunJudgment.objects.bulk_create(
        [RunJudgment(run=run, judgment=j, reused=j.created_by_run_id != run.pk) for j in made],
        ignore_conflicts=True,
    )


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


def _fail(run: Run, message: str) -> None:
    Run.objects.filter(pk=run.pk).exclude(status=Run.Status.CANCELLED).update(
        status=Run.Status.FAILED, note=message, finished_at=timezone.now()
    )


def _refresh(run: Run, *, finish: bool = False) -> None:
    """Recount the run from its judgments (so counts stay exact whatever was redelivered)
    and close it once no chunk is left."""
    links = RunJudgment.objects.filter(run=run)
    counts = links.aggregate(
        done=Count("pk", filter=Q(judgment__error="")),
        failed=Count("pk", filter=~Q(judgment__error="")),
        reused=Count("pk", filter=Q(reused=True)),
    )
    spent = Judgment.objects.filter(created_by_run=run).aggregate(
        calls=Sum("calls"),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        cached_tokens=Sum("cached_tokens"),
        cost=Sum("cost"),
    )
    changes: dict[str, Any] = {**counts, **{k: v or 0 for k, v in spent.items()}}
    Run.objects.filter(pk=run.pk).update(**changes)
    if finish and not run.chunks.exclude(status=RunChunk.Status.DONE).exists():
        ending: dict[str, Any] = {"status": Run.Status.DONE, "finished_at": timezone.now()}
        if counts["failed"] and not counts["done"]:
            ending.update(status=Run.Status.FAILED, note=_all_failed_note(links))
        Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING).update(**ending)


def _all_failed_note(links: QuerySet[RunJudgment]) -> str:
    """Why a run in which no judgment succeeded failed: its most common reason."""
    reason = (
        links.values("judgment__error")
        .annotate(n=Count("pk"))
        .order_by("-n", "judgment__error")
        .values_list("judgment__error", flat=True)
        .first()
    )
    return f"Every judgment failed; the most common reason: {reason}"


# --- unattended recovery ------------------------------------------------------------------


def run_chunks_sweep(*, now: datetime | None = None) -> int:
    """Requeue every chunk whose lease ran out in a run that is still queued or running
    (its worker died: SIGKILL, out of memory, a lost machine), and close every run marked
    running whose chunks are all done (its worker died between the two writes). Paused,
    cancelled and finished runs are left as they are: *Resume* is for those.

    Called by every worker's sweeper (``scoring.recovery``), so any number may run
    at once: a chunk is requeued by an update guarded on the claim it found, which one
    sweeper wins, and a requeued chunk is claimed again like any other. A worker that was
    only slow loses its claim at that takeover and its judgments are unique by key, so
    nothing is written twice. Returns the number of chunks requeued."""
    now = now or timezone.now()
    expired = (
        RunChunk.objects.filter(
            status=RunChunk.Status.RUNNING,
            run__status__in=[Run.Status.QUEUED, Run.Status.RUNNING],
        )
        .filter(Q(claimed_at__lt=now - chunk_lease()) | Q(claimed_at__isnull=True))
        .select_related("run__project")
        .only("pk", "index", "attempts", "claimed_at", "run")
        .order_by("run_id", "index")
    )
    taken: dict[int, tuple[Run, list[int]]] = {}
    for chunk in expired:
        if RunChunk.objects.filter(
            pk=chunk.pk,
            status=RunChunk.Status.RUNNING,
            attempts=chunk.attempts,
            claimed_at=chunk.claimed_at,
        ).update(status=RunChunk.Status.QUEUED):
            taken.setdefault(chunk.run_id, (chunk.run, []))[1].append(chunk.index)
    for run, indexes in taken.values():
        logger.warning("run %s: chunks %s requeued, their lease ran out", run.pk, indexes)
        audit(project=run.project, actor=None, action="run.recover", target=str(run.pk),
              chunks=indexes)  # fmt: skip
        _enqueue(run, indexes)
    left = Run.objects.filter(status=Run.Status.RUNNING).exclude(
        chunks__status__in=[RunChunk.Status.QUEUED, RunChunk.Status.RUNNING]
    )
    for run in left:
        _refresh(run, finish=True)
    return sum(len(indexes) for _, indexes in taken.values())
