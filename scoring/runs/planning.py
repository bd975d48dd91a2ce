"""Planning a scoring run: the units of work (responses × criteria × samples, or response
pairs in both orders), each with the key of the judgment it gives (what the judge is
shown, the judge itself, the template version and the sample), the chunks they are cut
into, and the preview of a run's calls, tokens, cost and time before it is launched.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.db.models import Q

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts.models import Response
from annotation.rubrics.models import Criterion, Rubric
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import LOGPROBS_VERSION_PREFIX, Judgment, Run
from scoring.runs.modes.base import JudgingMode, PlanSpec, Unit, judgment_key
from scoring.runs.modes.logprobs import TOP_LOGPROBS
from scoring.runs.modes.registry import mode_for

MAX_UNITS = 2_000_000


def chunk_size(mode: str, endpoint: JudgeEndpoint, units: int) -> int:
    """Chunks small enough to spread evenly over the worker processes (about eight rounds
    each: the last round is where processes sit idle) and large enough to hold four waves
    of a process's share of the endpoint's concurrency; at most the mode's ``chunk_size``.
    A local judge's chunks are the mode's ``local_chunk_size``."""
    judging_mode = mode_for(mode)
    if is_local(endpoint):
        if judging_mode.local_chunk_size is None:
            raise ApplicationError(f"A local model cannot grade in the mode “{mode}”.")
        return judging_mode.local_chunk_size
    processes: int = max(1, settings.LLM_PROCESS_SHARE)
    per_process = max(1, endpoint.max_concurrency // processes)
    balanced = math.ceil(units / (8 * processes))
    return max(4 * per_process, min(judging_mode.chunk_size, balanced), 1)


def chunk_lease() -> timedelta:
    """How long a claimed chunk belongs to its worker before another may take it over."""
    return timedelta(seconds=settings.SCORING_CHUNK_LEASE)


def is_local(endpoint: JudgeEndpoint | None) -> bool:
    return endpoint is not None and endpoint.backend == JudgeEndpoint.Backend.LOCAL


def reads_logprobs(endpoint: JudgeEndpoint | None) -> bool:
    return endpoint is not None and endpoint.backend == JudgeEndpoint.Backend.OPENAI_LOGPROBS


def template_version(endpoint: JudgeEndpoint, mode: str) -> str:
    """The template a run records: a logprob judge sends the local judge's prompts."""
    judging_mode = mode_for(mode)
    if reads_logprobs(endpoint):
        return LOGPROBS_VERSION_PREFIX + judging_mode.local_template_version()
    return judging_mode.template_version(local=is_local(endpoint))


def judge_hash(endpoint: JudgeEndpoint, temperature: float | None) -> str:
    """What about the judge decides a verdict: the server, model and sampling parameters;
    for a local model its directory, dtype, device and threshold (bf16 readings differ
    from fp32 ones, and with the batch they were read in, at the 1e-2 level); for a
    logprob judge its server, model, how many top tokens it reads and its threshold."""
    if reads_logprobs(endpoint):
        from_logprobs = {
            "backend": JudgeEndpoint.Backend.OPENAI_LOGPROBS.value,
            "base_url": endpoint.base_url.rstrip("/"),
            "model": endpoint.model,
            "top_logprobs": TOP_LOGPROBS,
            "threshold": endpoint.threshold,
        }
        return hashlib.sha256(json.dumps(from_logprobs, sort_keys=True).encode()).hexdigest()
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


# --- planning -----------------------------------------------------------------------------


@dataclass
class Plan:
    units: list[Unit]
    judgments: int  # verdicts the units produce (a grouped unit gives one per criterion)
    calls: int
    responses: int
    input_chars: int


def criteria_by_prompt(
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
    response_ids: list[int] | None = None,
) -> Plan:
    """Every unit of work of a run, with its judgment keys, in a deterministic order.
    ``response_ids``: exactly these responses (a judge probe's); otherwise those of
    ``sources``, or every source but a probe's perturbed copies."""
    responses = Response.objects.filter(prompt__project=project).order_by("prompt_id", "id")
    if response_ids is not None:
        responses = responses.filter(pk__in=response_ids)
    elif sources:
        responses = responses.filter(source__in=sources)
    else:
        responses = responses.without_probes()
    if prompt_ids:
        responses = responses.filter(prompt_id__in=prompt_ids)
    judging_mode = _check_options(mode, samples, pair_plan, baseline_source, pairs_per_prompt)
    if endpoint.reads_probabilities:
        _check_local(endpoint, judging_mode, samples, temperature)
    fields = ("id", "prompt_id", "source", "content_hash", "content", "prompt__messages")
    rows = cast(list[dict[str, Any]], list(responses.values(*fields)))
    for row in rows:  # what the judge is shown of a response: its text and its conversation
        row["seen"] = judgment_key(row["id"], row["content_hash"], row.pop("prompt__messages"))
    criteria = criteria_by_prompt(project, {r["prompt_id"] for r in rows}, versions)
    spec = PlanSpec(
        judge=judge_hash(endpoint, temperature), version=template_version(endpoint, mode),
        samples=samples, pair_plan=pair_plan, baseline_source=baseline_source,
        pairs_per_prompt=pairs_per_prompt,
    )  # fmt: skip
    units: list[Unit] = []
    judgments = chars = calls = 0
    logprobs = reads_logprobs(endpoint)
    by_prompt: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_prompt[row["prompt_id"]].append(row)
    for prompt_id, group in by_prompt.items():
        rubric = criteria.get(prompt_id, criteria[None])
        if not rubric:  # no (approved) rubric: nothing to judge against
            continue
        for unit, shown_chars in judging_mode.plan_prompt(prompt_id, group, rubric, spec):
            # A logprob judge asks each of a unit's questions in a call of its own.
            questions = judging_mode.questions(unit) if logprobs else 1
            units.append(unit)
            judgments += len(unit.keys)
            calls += questions
            chars += shown_chars * questions
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
    return Plan(units, judgments, calls, len(rows), chars)


def _check_options(
    mode: str, samples: int, pair_plan: str, baseline_source: str, pairs_per_prompt: int
) -> JudgingMode:
    judging_mode = mode_for(mode)  # ApplicationError for an unknown mode
    if not 1 <= samples <= 20:
        raise ApplicationError("Samples per judgment are between 1 and 20.")
    judging_mode.check_options(
        pair_plan=pair_plan, baseline_source=baseline_source, pairs_per_prompt=pairs_per_prompt
    )
    return judging_mode


def _check_local(
    endpoint: JudgeEndpoint, judging_mode: JudgingMode, samples: int, temperature: float | None
) -> None:
    """A local or logprob judge reads one probability per question: per criterion or
    pairwise, and deterministic (no samples, no temperature)."""
    local = is_local(endpoint)
    what = "a local model" if local else "a P(yes)-from-logprobs judge"
    why = (
        "its probabilities are deterministic"
        if local
        else "it reads probabilities at temperature 0"
    )
    if not judging_mode.grades_locally:
        raise ApplicationError(
            f"“{endpoint.name}” is {what}: it grades per criterion or pairwise "
            "(grouped and holistic grading need a generating LLM endpoint)."
        )
    if samples != 1 or temperature is not None:
        raise ApplicationError(
            f"“{endpoint.name}” is {what}: {why}, so one sample and no temperature."
        )


# --- preview -------------------------------------------------------------------------------


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


def preview(plan: Plan, *, endpoint: JudgeEndpoint, mode: str) -> RunPreview:
    """Calls, tokens (4 characters a token: offline, no tokenizer download), cost from the
    endpoint's prices and the time its concurrency and rate limits allow at 2 s a call;
    judgments already made with the same inputs are reused and cost nothing."""
    keys = [k for u in plan.units for k in u.keys]
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
    input_tokens, output_tokens = mode_for(mode).estimate_tokens(plan.input_chars * share, calls)
    if reads_logprobs(endpoint):
        output_tokens = calls  # one answer token a call
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
