"""Reads of co-authoring jobs and proposals, scoped through the project a view already
checked access to."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from annotation.projects.models import Project
from annotation.prompts.models import PreferenceLabel, Prompt
from scoring.coauthoring.models import CoauthorJob, Proposal


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


def jobs_for_prompt(*, prompt: Prompt, limit: int = 20) -> list[CoauthorJob]:
    """Recent single-prompt jobs about this prompt, newest first."""
    return list(CoauthorJob.objects.filter(prompt=prompt).select_related("endpoint")[:limit])


def pending_proposals(*, prompt: Prompt) -> QuerySet[Proposal]:
    return Proposal.objects.filter(prompt=prompt, status=Proposal.Status.PENDING).order_by("id")


def preference_labels(*, prompt: Prompt) -> QuerySet[PreferenceLabel]:
    return PreferenceLabel.objects.filter(prompt=prompt).select_related("chosen", "rejected")
