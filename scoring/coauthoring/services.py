"""LLM co-authoring jobs: start one, send it to the workers, cancel it, and estimate a
batch's calls, tokens and cost before launch; also the project's co-authoring settings, the
endpoint a job writes with, and the usage a job or proposal recorded. The job runs in a
Celery worker (``scoring.coauthoring.worker``); its proposals are accepted or rejected in
``scoring.coauthoring.proposals``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from annotation.errors import ApplicationError, check_text
from annotation.projects.models import Project
from annotation.projects.services import audit
from annotation.prompts.models import PreferenceLabel, Prompt
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal
from scoring.coauthoring.tasks import coauthor_job_run
from scoring.engine.gateway_types import Usage
from scoring.judges.models import JudgeEndpoint

logger = logging.getLogger(__name__)
Kind = CoauthorJob.Kind
MAX_BATCH = 2000
MAX_REFERENCE = 100_000


def coauthor_settings(project: Project) -> CoauthorSettings:
    found, _ = CoauthorSettings.objects.get_or_create(project=project)
    return found


def endpoint_for(
    project: Project, endpoint_id: object = None, *, generating: bool = True
) -> JudgeEndpoint:
    """The chosen endpoint of the project, else its default, else its first one.
    ``generating``: the caller needs text written (co-authoring), which a local or logprob
    judge, reading one probability, does not do."""
    if endpoint_id not in (None, ""):
        text = str(endpoint_id)
        if not (text.isascii() and text.isdigit()):
            raise ApplicationError(f"“{text}” is not an endpoint id.")
        endpoint = JudgeEndpoint.objects.filter(project=project, pk=int(text)).first()
        if endpoint is None:
            raise ApplicationError("Choose one of this project's endpoints.")
        if generating and endpoint.reads_probabilities:
            local = endpoint.backend == JudgeEndpoint.Backend.LOCAL
            what = "a local model" if local else "a P(yes)-from-logprobs judge"
            raise ApplicationError(
                f"“{endpoint.name}” is {what}: it grades runs but cannot write "
                "rubrics. Choose an OpenAI-compatible endpoint."
            )
        return endpoint
    endpoint = coauthor_settings(project).endpoint
    if endpoint is not None and generating and endpoint.reads_probabilities:
        endpoint = None  # the default became a local or logprob judge: it does not write
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
def job_start(
    *,
    project: Project,
    actor: User,
    kind: str,
    prompt: Prompt | None = None,
    prompt_ids: Sequence[int] = (),
    label_id: int | None = None,
    label_ids: Sequence[int] = (),
    reference: str = "",
    endpoint_id: object = None,
    analytics: dict[str, Any] | None = None,
) -> CoauthorJob:
    """Queue a co-authoring job; the worker picks it up once this transaction commits.
    ``analytics``: what the Analytics tab found (the flagged criteria with their figures),
    carried into the proposals' notes."""
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
    if analytics:
        params["analytics"] = analytics
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

    try:
        coauthor_job_run.delay(job_id)
    except Exception:
        logger.exception("co-authoring job %s could not be sent to the workers", job_id)


@transaction.atomic
def job_cancel(*, job: CoauthorJob, actor: User | AnonymousUser | None) -> CoauthorJob:
    CoauthorJob.objects.filter(
        pk=job.pk, status__in=[CoauthorJob.Status.QUEUED, CoauthorJob.Status.RUNNING]
    ).update(status=CoauthorJob.Status.CANCELLED, finished_at=timezone.now())
    audit(project=job.project, actor=actor, action="coauthor.cancel", target=str(job.pk))
    job.refresh_from_db()
    return job


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


def usage_of(obj: CoauthorJob | Proposal) -> Usage:
    return Usage(
        prompt_tokens=obj.prompt_tokens,
        completion_tokens=obj.completion_tokens,
        cached_tokens=obj.cached_tokens,
        cost=obj.cost,
        calls=obj.calls,
    )


@transaction.atomic
def coauthor_settings_save(
    *, project: Project, actor: User | AnonymousUser | None, data: dict[str, Any]
) -> CoauthorSettings:
    """``data`` as ``scoring.judges.forms.CoauthorSettingsForm`` cleans it: an endpoint id,
    a style, the tries and rounds within their bounds; what is empty stays as it was."""
    settings_, _ = CoauthorSettings.objects.select_for_update().get_or_create(project=project)
    if data.get("endpoint") is not None:
        settings_.endpoint = endpoint_for(project, data["endpoint"])
    for name in ("style", "contrastive_tries", "refine_rounds"):
        if data.get(name) not in (None, ""):
            setattr(settings_, name, data[name])
    settings_.save()
    audit(project=project, actor=actor, action="coauthor.settings", target=str(project.pk))
    return settings_
