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
from typing import Any

from django.conf import settings
from django.db.models import Q

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts.models import Response
from annotation.rubrics.models import Criterion, Rubric
from scoring.engine import judging, pairwise
from scoring.judges.models import JudgeEndpoint
from scoring.runs.models import Judgment, Run

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
