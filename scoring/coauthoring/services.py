"""LLM co-authoring jobs: start one, run it (in a Celery worker), and accept or reject the
proposals it makes. Accepted criteria become a new rubric version through annotation's
services, with provenance llm and the model's name; nothing is applied half-way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.errors import ApplicationError, check_text
from annotation.heartbeat import Heartbeat
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.models import PreferenceLabel, Prompt
from annotation.rubrics import services as rubric_services
from annotation.rubrics.logic import CriterionSnapshot, diff_criteria, merge_criteria
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.selectors import project_wide_criteria, version_dicts
from scoring.analytics import duplicates
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal
from scoring.engine import coauthor as engine
from scoring.engine.gateway import Gateway, GatewayError, Usage
from scoring.judges.gateways import gateway_for
from scoring.judges.models import JudgeEndpoint

logger = logging.getLogger(__name__)
Kind = CoauthorJob.Kind
MAX_BATCH = 2000
# A worker renews a running job's lease after every chunk; a redelivered task takes over
# only a job whose lease ran out (its worker died), never one that is still being worked.
LEASE = timedelta(minutes=10)
MAX_REFERENCE = 100_000


def coauthor_settings(project: Project) -> CoauthorSettings:
    found, _ = CoauthorSettings.objects.get_or_create(project=project)
    return found


def endpoint_for(
    project: Project, endpoint_id: object = None, *, generating: bool = True
) -> JudgeEndpoint:
    """The chosen endpoint of the project, else its default, else its first one.
    ``generating``: the caller needs text written (co-authoring), which a local judge,
    reading one probability, cannot do."""
    if endpoint_id not in (None, ""):
        text = str(endpoint_id)
        if not (text.isascii() and text.isdigit()):
            raise ApplicationError(f"“{text}” is not an endpoint id.")
        endpoint = JudgeEndpoint.objects.filter(project=project, pk=int(text)).first()
        if endpoint is None:
            raise ApplicationError("Choose one of this project's endpoints.")
        if generating and endpoint.backend == JudgeEndpoint.Backend.LOCAL:
            raise ApplicationError(
                f"“{endpoint.name}” is a local model: it grades runs but cannot write "
                "rubrics. Choose an OpenAI-compatible endpoint."
            )
        return endpoint
    endpoint = coauthor_settings(project).endpoint
    if endpoint is not None and generating and endpoint.backend == JudgeEndpoint.Backend.LOCAL:
        endpoint = None  # the default became a local model: it cannot write
    candidates = JudgeEndpoint.objects.filter(project=project).order_by("name")
    if generating:
        candidates = candidates.filter(backend=JudgeEndpoint.Backend.OPENAI)
    endpoint = endpoint or candidates.first()
    if endpoint is None:
        raise ApplicationError(
            "No judge endpoint is configured for this project: add one on the Judges page."
        )
    return endpoint


@transaction.atomic
def job_start(  # type: ignore[no-untyped-def]
    *,
    project: Project,
    actor,
    kind: str,
    prompt: Prompt | None = None,
    prompt_ids: Sequence[int] = (),
    label_id: int | None = None,
    label_ids: Sequence[int] = (),
    reference: str = "",
    endpoint_id: object = None,
) -> CoauthorJob:
    """Queue a co-authoring job; the worker picks it up once this transaction commits."""
    if kind not in Kind.values:
        raise ApplicationError(f"Unknown action “{kind}”.")
    endpoint = endpoint_for(project, endpoint_id)
    params: dict[str, Any] = {}
    if prompt is not None:
        prompt_ids = [prompt.pk]
    prompts = list(
        Prompt.objects.filter(project=project, pk__in=prompt_ids).values_list("pk", flat=True)
    )
    if kind == Kind.CONTRASTIVE:
        labels = list(
            PreferenceLabel.objects.filter(prompt__project=project, pk__in=[*label_ids, label_id])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not labels:
            raise ApplicationError("Choose a preference pair (chosen and rejected responses).")
        params["labels"] = labels
        total = len(labels)
        prompts = list(
            PreferenceLabel.objects.filter(pk__in=labels).values_list("prompt_id", flat=True)
        )
        if len(set(prompts)) != len(prompts):
            raise ApplicationError("Choose one preference pair per prompt in a job.")
    else:
        if not prompts:
            raise ApplicationError("Choose at least one prompt of this project.")
        params["prompts"] = sorted(prompts)
        total = len(prompts)
    if total > MAX_BATCH:
        raise ApplicationError(f"A batch holds at most {MAX_BATCH} items ({total} chosen).")
    if kind == Kind.NUGGETS:
        reference = check_text(reference, "The reference passage").strip()
        if not reference:
            raise ApplicationError("Paste or upload a reference passage first.")
        if len(reference) > MAX_REFERENCE:
            raise ApplicationError(f"The reference passage is over {MAX_REFERENCE:,} characters.")
        params["reference"] = reference
    options = coauthor_settings(project)
    params.update(
        style=options.style, tries=options.contrastive_tries, rounds=options.refine_rounds
    )
    job = CoauthorJob.objects.create(
        project=project,
        endpoint=endpoint,
        created_by=actor,
        kind=kind,
        batch=total > 1,
        prompt=Prompt.objects.get(pk=prompts[0]) if total == 1 and prompts else None,
        params=params,
        model=endpoint.model,
        total=total * (options.refine_rounds if kind == Kind.REFINE else 1),
        heartbeat_at=timezone.now(),  # when it was sent: the sweep resends a lost one
    )
    audit(project=project, actor=actor, action="coauthor.start", target=str(job.pk), kind=kind)
    job_id = job.pk
    transaction.on_commit(lambda: job_send(job_id))
    return job


def job_send(job_id: int) -> None:
    """Send a queued job to the workers; when the broker cannot take it now the job stays
    queued and the recovery sweep sends it again after ``LEASE``."""
    from scoring.coauthoring.tasks import coauthor_job_run

    try:
        coauthor_job_run.delay(job_id)
    except Exception:
        logger.exception("co-authoring job %s could not be sent to the workers", job_id)


@transaction.atomic
def job_cancel(*, job: CoauthorJob, actor) -> CoauthorJob:  # type: ignore[no-untyped-def]
    CoauthorJob.objects.filter(
        pk=job.pk, status__in=[CoauthorJob.Status.QUEUED, CoauthorJob.Status.RUNNING]
    ).update(status=CoauthorJob.Status.CANCELLED, finished_at=timezone.now())
    audit(project=job.project, actor=actor, action="coauthor.cancel", target=str(job.pk))
    job.refresh_from_db()
    return job


# --- running a job ------------------------------------------------------------------------


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
            rows = prompt.responses.order_by("id").values_list("id", "content")
            picked, how = duplicates.diverse_responses(list(rows[: duplicates.REFINE_CANDIDATES]))
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
        return [await engine.draft(gateway, item.context, item.current, style=style, secret=secret)]
    if kind == Kind.CONTRASTIVE:
        result = await engine.contrastive(
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
        return await engine.refine(
            gateway,
            item.context,
            item.current,
            responses=item.responses,
            rounds=job.params.get("rounds", 2),
            style=style,
            secret=secret,
        )
    if kind == Kind.CRITIQUE:
        return [await engine.critique(gateway, item.context, item.current, secret=secret)]
    return [
        await engine.nuggets(
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
                    "notes": {**result.notes, **(item.selection or {})},
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


# --- preview ------------------------------------------------------------------------------


@dataclass
class Preview:
    items: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float
    seconds: float


def batch_preview(*, endpoint: JudgeEndpoint, kind: str, prompts: Sequence[Prompt]) -> Preview:
    """Calls, tokens and cost before launch: input from the rendered instructions plus the
    prompt's text (4 characters a token), output at the endpoint's max tokens (an upper
    bound); ETA from the concurrency and rate limits at 5 s a call."""
    instructions = 2500 if kind == Kind.CONTRASTIVE else 1800
    calls_each = 3 if kind == Kind.CONTRASTIVE else 1  # a contrastive try grades both sides
    chars = sum(len(p.search_text) + len(p.reference_answer) for p in prompts)
    calls = calls_each * len(prompts)
    input_tokens = math.ceil((chars * calls_each + instructions * calls) / 4)
    output_tokens = endpoint.max_tokens * calls
    cost = (
        input_tokens * endpoint.price_input_per_m + output_tokens * endpoint.price_output_per_m
    ) / 1e6
    per_second = endpoint.max_concurrency / 5.0
    if endpoint.rpm:
        per_second = min(per_second, endpoint.rpm / 60)
    if endpoint.tpm:
        per_second = min(
            per_second, endpoint.tpm / 60 / max((input_tokens + output_tokens) / max(calls, 1), 1)
        )
    return Preview(
        len(prompts), calls, input_tokens, output_tokens, cost, calls / per_second if calls else 0.0
    )


# --- accepting a proposal -----------------------------------------------------------------


def _snapshot(c: dict[str, Any]) -> CriterionSnapshot:
    return CriterionSnapshot(
        str(c["key"]),
        c["text"].strip(),
        float(c["points"]),
        c["category"],
        c["kind"],
        tuple(c["tags"]),
    )


def proposal_changes(proposal: Proposal) -> list[Any]:
    """The proposal as a criterion-level diff against the version it was made on."""
    return [
        change
        for change in diff_criteria(
            [_snapshot(c) for c in proposal.base_criteria],
            [_snapshot(c) for c in proposal.criteria],
        )
        if change.status != "unchanged"
    ]


def _selected(proposal: Proposal, accepted: set[str]) -> list[dict[str, Any]]:
    """The proposal's base criteria with only the accepted changes made."""
    proposed = {c["key"]: c for c in proposal.criteria}
    out = [dict(c) for c in proposal.base_criteria]
    order = [c["key"] for c in proposal.criteria]
    for change in proposal_changes(proposal):
        if change.key not in accepted:
            continue
        if change.status == "removed":
            out = [c for c in out if c["key"] != change.key]
        elif change.status == "added":
            before = set(order[: order.index(change.key)])
            anchor = max((i for i, c in enumerate(out) if c["key"] in before), default=-1)
            out.insert(anchor + 1, dict(proposed[change.key]))
        else:  # changed (or moved): the proposal's content in place
            at = next(i for i, c in enumerate(out) if c["key"] == change.key)
            out[at] = {
                **dict(proposed[change.key]),
                "provenance": "llm",
                "provenance_model": proposal.model,
            }
    return out


def _apply(
    current: list[dict[str, Any]], proposal: Proposal, accepted: set[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The accepted changes merged into the current criteria, three-way from the version
    the proposal was made on: a criterion a person changed since is never overwritten
    (that change is skipped and reported), and edits to other criteria stay."""
    mine = _selected(proposal, accepted)
    result = merge_criteria(
        [_snapshot(c) for c in proposal.base_criteria],
        [_snapshot(c) for c in current],
        [_snapshot(c) for c in mine],
    )
    conflicts = {c.key for c in result.conflicts}
    theirs = {c["key"]: c for c in current}
    ours = {c["key"]: c for c in mine}
    out = []
    for snapshot in result.criteria:
        if snapshot.key in conflicts:
            if snapshot.key in theirs:  # the person's version stays
                out.append(theirs[snapshot.key])
        elif snapshot.key in theirs and _snapshot(theirs[snapshot.key]) == snapshot:
            out.append(theirs[snapshot.key])
        else:
            out.append(ours[snapshot.key])
    return out, sorted(conflicts & accepted)


@transaction.atomic
def proposal_decide(  # type: ignore[no-untyped-def]
    *, proposal: Proposal, actor, accept: Sequence[str] | None
) -> RubricVersion | None:
    """Accept the changes whose criterion keys are in ``accept`` (None: all of them) as one
    new rubric version, or reject the proposal (an empty ``accept``)."""
    if proposal.prompt_id is not None:  # serialises the creation of a first rubric
        Prompt.objects.select_for_update().filter(pk=proposal.prompt_id).first()
    proposal = Proposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != Proposal.Status.PENDING:
        raise ApplicationError(f"This proposal is already {proposal.get_status_display().lower()}.")
    keys = {c.key for c in proposal_changes(proposal)}
    chosen = keys if accept is None else {str(k) for k in accept} & keys
    if accept and not chosen:
        raise ApplicationError("None of those changes belongs to this proposal.")
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    version = None
    if chosen:
        rubric = proposal.rubric or Rubric.objects.filter(prompt=proposal.prompt).first()
        if rubric is not None:
            rubric = Rubric.objects.select_for_update(of=("self",)).get(pk=rubric.pk)
        current = version_dicts(rubric.current_version_id if rubric else None)
        criteria, skipped = _apply(current, proposal, chosen)
        note = (
            f"Accepted {len(chosen) - len(skipped)} of {len(keys)} changes proposed by "
            f"{proposal.model} ({proposal.get_kind_display().lower()}, {proposal.template_version})"
        )
        inputs = [
            rubric_services.CriterionInput(
                text=c["text"],
                points=float(c["points"]),
                category=c["category"],
                kind=c["kind"],
                tags=list(c["tags"]),
                provenance=c.get("provenance", Criterion.Provenance.HUMAN),
                provenance_model=c.get("provenance_model", ""),
                key=uuid.UUID(str(c["key"])),
            )
            for c in criteria
        ]
        if rubric is None:
            rubric = rubric_services.rubric_create(
                project=proposal.project,
                prompt=proposal.prompt,
                title=f"Rubric for {proposal.prompt.external_id}",
                criteria=inputs,
                author=actor,
                author_model=proposal.model,
                note=note,
            )
            version = rubric.current_version
        else:
            version = rubric_services.rubric_version_create(
                rubric=rubric, criteria=inputs, author=actor, author_model=proposal.model, note=note
            )
        proposal.rubric = rubric
        proposal.result_version = version.number
        proposal.status = (
            Proposal.Status.ACCEPTED if chosen == keys and not skipped else Proposal.Status.PARTIAL
        )
    else:
        proposal.status = Proposal.Status.REJECTED
    proposal.save(update_fields=["status", "decided_by", "decided_at", "rubric", "result_version"])
    audit(
        project=proposal.project,
        actor=actor,
        action=f"proposal.{proposal.status}",
        target=str(proposal.pk),
        version=proposal.result_version,
    )
    return version


def usage_of(obj: CoauthorJob | Proposal) -> Usage:
    return Usage(
        prompt_tokens=obj.prompt_tokens,
        completion_tokens=obj.completion_tokens,
        cached_tokens=obj.cached_tokens,
        cost=obj.cost,
        calls=obj.calls,
    )
