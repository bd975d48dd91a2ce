"""Reads of the scoring app, scoped through the project a view already checked access to."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from annotation.models import PreferenceLabel, Project, Prompt
from scoring.models import CoauthorJob, JudgeEndpoint, LLMProvider, Proposal, Run


def endpoints_of(*, project: Project) -> QuerySet[JudgeEndpoint]:
    return JudgeEndpoint.objects.filter(project=project).select_related("provider").order_by("name")


def providers_for(*, project: Project) -> QuerySet[LLMProvider]:
    """The enabled providers the site admin made available to ``project`` (to every project
    when a provider names none)."""
    available = Q(projects=None) | Q(projects=project)
    ids = LLMProvider.objects.filter(available, enabled=True).values("pk")
    return LLMProvider.objects.filter(pk__in=ids).order_by("name")


def endpoint_get(*, project: Project, endpoint_id: int) -> JudgeEndpoint:
    endpoint = JudgeEndpoint.objects.filter(project=project, pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("No such endpoint.")
    return endpoint


def job_get(*, project: Project, job_id: int) -> CoauthorJob:
    job = CoauthorJob.objects.filter(project=project, pk=job_id).select_related("endpoint").first()
    if job is None:
        raise Http404("No such job.")
    return job


def proposal_get(*, project: Project, proposal_id: int) -> Proposal:
    proposal = (
        Proposal.objects.filter(project=project, pk=proposal_id)
        .select_related("prompt", "rubric", "job")
        .first()
    )
    if proposal is None:
        raise Http404("No such proposal.")
    return proposal


def jobs_for_prompt(*, prompt: Prompt, limit: int = 3) -> list[CoauthorJob]:
    """Recent single-prompt jobs about this prompt, newest first."""
    return list(CoauthorJob.objects.filter(prompt=prompt).select_related("endpoint")[:limit])


def pending_proposals(*, prompt: Prompt) -> QuerySet[Proposal]:
    return Proposal.objects.filter(prompt=prompt, status=Proposal.Status.PENDING).order_by("id")


def preference_labels(*, prompt: Prompt) -> QuerySet[PreferenceLabel]:
    return PreferenceLabel.objects.filter(prompt=prompt).select_related("chosen", "rejected")


def run_get(*, project: Project, run_id: int) -> Run:
    run = Run.objects.filter(project=project, pk=run_id).select_related("endpoint").first()
    if run is None:
        raise Http404("No such run.")
    return run


def run_rate(run: Run) -> dict[str, float | None]:
    """Judgments per second since the run started, and the seconds left at that rate."""
    from django.utils import timezone

    if run.started_at is None:
        return {"rate": None, "eta": None}
    end = run.finished_at or timezone.now()
    seconds = max((end - run.started_at).total_seconds(), 1e-6)
    made = run.done + run.failed - run.reused
    rate = made / seconds if made > 0 else None
    left = run.total - run.done - run.failed
    return {"rate": rate, "eta": left / rate if rate and not run.finished else None}
