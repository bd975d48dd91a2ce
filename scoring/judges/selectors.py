"""Reads of judge endpoints and providers, scoped through the project a view already checked
access to."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from annotation.projects.models import Project
from scoring.judges.models import JudgeEndpoint, LLMProvider


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
