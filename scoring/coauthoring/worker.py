"""Running a co-authoring job in a Celery worker: the job is claimed under a lease, its items
(a prompt, or a preference pair, with what the LLM calls need) are read from the database,
processed in chunks on one event loop with a heartbeat, and each item's proposals and usage
are stored as its chunk finishes; a redelivered or requeued job resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.heartbeat import Heartbeat
from annotation.prompts.models import PreferenceLabel, Prompt
from annotation.rubrics.models import Rubric
from annotation.rubrics.selectors import project_wide_criteria, version_dicts
from scoring.analytics import vector_store
from scoring.coauthoring.models import CoauthorJob, Proposal
from scoring.engine import coauthor as engine
from scoring.engine import coauthor_contrastive, coauthor_drafting
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import GatewayError, Usage
from scoring.judges.gateways import gateway_for

logger = logging.getLogger(__name__)
Kind = CoauthorJob.Kind
# A worker renews a running job's lease after every chunk; a redelivered task takes over
# only a job whose lease ran out (its worker died), never one that is still being worked.
LEASE = timedelta(minutes=10)


@dataclass
class Item:
    """What one unit of a job needs, read from the database before the LLM calls."""

    prompt: Prompt
    rubric: Rubric | None
    base_number: int | None
    current: list[dict[str, Any]]
    context: engine.PromptContext
    chosen: str = ""
    rejected: str = ""
    responses: tuple[str, ...] = ()
    selection: dict[str, Any] | None = None  # which responses refine grades, and how chosen


def _items(job: CoauthorJob) -> list[Item]:
    project = job.project
    wide = [c.text for _, cs in project_wide_criteria(project=project) for c in cs]
    labels: dict[int, PreferenceLabel] = {}
    if job.kind == Kind.CONTRASTIVE:
        found = PreferenceLabel.objects.filter(pk__in=job.params["labels"]).select_related(
            "chosen", "rejected"
        )
        labels = {label.prompt_id: label for label in found}
        prompt_ids = sorted(labels)
    else:
        prompt_ids = job.params["prompts"]
    prompts = Prompt.objects.filter(project=project, pk__in=prompt_ids).order_by("pk")
    rubrics = {
        r.prompt_id: r
        for r in Rubric.objects.filter(prompt__in=prompt_ids).select_related("current_version")
    }
    items = []
    for prompt in prompts:
        rubric = rubrics.get(prompt.pk)
        current = version_dicts(rubric.current_version_id if rubric else None)
        label = labels.get(prompt.pk)
        responses: tuple[str, ...] = ()
        selection = None
        if job.kind == Kind.REFINE:
            # More than 8 responses: 8 spread by embedding, so the two best are not near twins.
            rows = prompt.responses.without_probes().order_by("id").values_list("id", "content")
            picked, how = vector_store.diverse_responses(
                list(rows[: vector_store.REFINE_CANDIDATES])
            )
            responses = tuple(content for _, content in picked)
            selection = {"response_ids": [pk for pk, _ in picked], "response_choice": how}
        items.append(
            Item(
                prompt=prompt,
                rubric=rubric,
                base_number=rubric.current_version.number
                if rubric and rubric.current_version
                else None,
                current=current,
                context=engine.PromptContext(
                    messages=prompt.messages,
                    reference_answer=prompt.reference_answer,
                    guidelines=project.guidelines,
                    project_criteria=wide,
                ),
                chosen=label.chosen.content if label else "",
                rejected=label.rejected.content if label else "",
                responses=responses,
                selection=selection,
            )
        )
    return items


async def _run_item(gateway: Gateway, job: CoauthorJob, item: Item) -> list[engine.ActionResult]:
    """The item's results; a bug is recorded as the item's error instead of sinking the
    whole batch (its calls' usage is then unknown, and the log has the traceback)."""
    try:
        return await _action(gateway, job, item)
    except Exception as exc:
        logger.exception("co-authoring job %s, prompt %s", job.pk, item.prompt.pk)
        return [engine.ActionResult([], {}, Usage(), "", f"Internal error: {exc}")]


async def _action(gateway: Gateway, job: CoauthorJob, item: Item) -> list[engine.ActionResult]:
    secret = settings.SECRET_KEY.encode()
    style, kind = job.params.get("style", "healthbench"), job.kind
    if kind == Kind.DRAFT:
        return [
            await coauthor_drafting.draft(
                gateway, item.context, item.current, style=style, secret=secret
            )
        ]
    if kind == Kind.CONTRASTIVE:
        result = await coauthor_contrastive.contrastive(
            gateway,
            item.context,
            item.current,
            chosen=item.chosen,
            rejected=item.rejected,
            tries=job.params.get("tries", 3),
            style=style,
            secret=secret,
        )
        return [result]
    if kind == Kind.REFINE:
        return await coauthor_contrastive.refine(
            gateway,
            item.context,
            item.current,
            responses=item.responses,
            rounds=job.params.get("rounds", 2),
            style=style,
            secret=secret,
        )
    if kind == Kind.CRITIQUE:
        return [
            await coauthor_drafting.critique(gateway, item.context, item.current, secret=secret)
        ]
    return [
        await coauthor_drafting.nuggets(
            gateway, item.context, item.current, reference=job.params["reference"], secret=secret
        )
    ]


def _with_keys(criteria: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """New criteria get their key now, so the proposal's diff is by key like any other;
    criteria the model wrote carry its name."""
    out = []
    for c in engine.with_new_keys(criteria):
        model_written = c.get("provenance") == "llm"
        out.append(
            {
                **c,
                "key": str(c["key"]),
                "provenance": c.get("provenance", "human"),
                "provenance_model": c.get("provenance_model") or (model if model_written else ""),
            }
        )
    return out


def _write(job: CoauthorJob, item: Item, results: list[engine.ActionResult]) -> None:
    """Store an item's proposals (one per refine round, each a diff against the round
    before) and count them on the job. A redelivered task finds them already there and
    adds no proposal, but the calls it made were billed, so their usage still counts."""
    base = item.current
    for round_, result in enumerate(results, start=1):
        usage = result.usage
        criteria = [] if result.error else _with_keys(result.criteria, job.model)
        with transaction.atomic():
            proposal, created = Proposal.objects.get_or_create(
                job=job,
                prompt=item.prompt,
                round=round_,
                defaults={
                    "project": job.project,
                    "rubric": item.rubric,
                    "kind": job.kind,
                    "base_number": item.base_number,
                    "base_criteria": base,
                    "criteria": criteria,
                    "notes": {
                        **result.notes,
                        **(item.selection or {}),
                        **(
                            {"analytics": job.params["analytics"]}
                            if "analytics" in job.params
                            else {}
                        ),
                    },
                    "model": job.model,
                    "template_version": result.template_version,
                    "status": Proposal.Status.FAILED if result.error else Proposal.Status.PENDING,
                    "error": result.error,
                    "calls": usage.calls,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cached_tokens": usage.cached_tokens,
                    "cost": usage.cost,
                },
            )
            CoauthorJob.objects.filter(pk=job.pk).update(
                done=F("done") + (1 if created and not result.error else 0),
                failed=F("failed") + (1 if created and result.error else 0),
                calls=F("calls") + usage.calls,
                prompt_tokens=F("prompt_tokens") + usage.prompt_tokens,
                completion_tokens=F("completion_tokens") + usage.completion_tokens,
                cached_tokens=F("cached_tokens") + usage.cached_tokens,
                cost=F("cost") + usage.cost,
                template_version=result.template_version,
                heartbeat_at=timezone.now(),
            )
        base = criteria or base


async def _run_chunk(
    gateway: Gateway, job: CoauthorJob, chunk: list[Item]
) -> list[list[engine.ActionResult]]:
    return await asyncio.gather(*(_run_item(gateway, job, item) for item in chunk))


def job_run(job_id: int) -> None:
    """Run a queued job (or resume one a lost worker left running). Items are processed in
    chunks on one event loop; between chunks the loop is idle, so the ORM writes happen
    in plain synchronous code and progress shows as chunks finish."""
    now = timezone.now()
    stale = Q(status=CoauthorJob.Status.RUNNING) & (
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - LEASE)
    )
    claimed = (
        CoauthorJob.objects.filter(pk=job_id)
        .filter(Q(status=CoauthorJob.Status.QUEUED) | stale)
        .update(status=CoauthorJob.Status.RUNNING, started_at=now, heartbeat_at=now)
    )
    if not claimed:  # running elsewhere (a live lease), finished, or cancelled
        return
    job = CoauthorJob.objects.select_related("project", "endpoint").get(pk=job_id)
    # This claim's rows: a later claim of the same job (the sweep requeued it) has another
    # started_at, and this one then stops before its next chunk and does not close the job.
    ours = CoauthorJob.objects.filter(pk=job.pk, status=CoauthorJob.Status.RUNNING, started_at=now)
    try:
        if job.endpoint is None:
            raise ApplicationError("The job's judge endpoint was deleted.")
        done = set(Proposal.objects.filter(job=job).values_list("prompt_id", flat=True))
        items = [i for i in _items(job) if i.prompt.pk not in done]
        gateway = gateway_for(job.endpoint)
    except (ApplicationError, GatewayError) as exc:
        _finish(job, error=exc.message)
        return
    except Exception as exc:
        logger.exception("co-authoring job %s", job.pk)
        _finish(job, error=f"Internal error: {exc}")
        raise
    loop = asyncio.new_event_loop()
    # A chunk of slow calls may outlast the lease: the heartbeat shows the job alive.
    heartbeat = Heartbeat(
        CoauthorJob, job.pk, (CoauthorJob.Status.RUNNING,), LEASE.total_seconds() / 5
    )
    try:
        size = max(2 * job.endpoint.max_concurrency, 8)
        with heartbeat:
            for start in range(0, len(items), size):
                if not ours.exists():  # cancelled, or taken over after a stalled lease
                    return
                chunk = items[start : start + size]
                results = loop.run_until_complete(_run_chunk(gateway, job, chunk))
                for item, item_results in zip(chunk, results, strict=True):
                    _write(job, item, item_results)
    except Exception as exc:
        logger.exception("co-authoring job %s", job.pk)
        _finish(job, error=f"Internal error: {exc}")
        raise
    finally:
        loop.run_until_complete(gateway.aclose())
        loop.close()
    _finish(job)


def _finish(job: CoauthorJob, *, error: str = "") -> None:
    """Close the job. A refine item stops at its first failed round, so the job's total
    becomes the rounds that were actually proposed."""
    status = CoauthorJob.Status.FAILED if error else CoauthorJob.Status.DONE
    changes: dict[str, Any] = {"status": status, "error": error, "finished_at": timezone.now()}
    if job.kind == Kind.REFINE and not error:
        changes["total"] = F("done") + F("failed")
    CoauthorJob.objects.filter(
        pk=job.pk, status=CoauthorJob.Status.RUNNING, started_at=job.started_at
    ).update(**changes)
