"""Reads of prompts and responses, scoped through a project the caller already checked
access to."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404

from annotation.projects.models import Project
from annotation.prompts.models import PROBE_SOURCE_PREFIX, Prompt, Response
from annotation.rubrics.models import (
    Rubric,
)


def prompt_list(
    *,
    project: Project,
    q: str = "",
    has_rubric: str = "",
    rubric_status: str = "",
    source: str = "",
) -> QuerySet[Prompt]:
    """Prompts of a project with the table's filters, annotated for display."""
    rubrics = Rubric.objects.filter(prompt=OuterRef("pk"))
    qs = (
        Prompt.objects.filter(project=project)
        .annotate(
            has_rubric=Exists(rubrics),
            response_count=Count(  # a judge probe's copies are not the prompt's responses
                "responses",
                filter=~Q(responses__source__startswith=PROBE_SOURCE_PREFIX),
                distinct=True,
            ),
        )
        .select_related(None)
        .order_by("id")
    )
    if q:
        qs = qs.filter(Q(external_id__icontains=q) | Q(search_text__icontains=q))
    if has_rubric == "yes":
        qs = qs.filter(has_rubric=True)
    elif has_rubric == "no":
        qs = qs.filter(has_rubric=False)
    if rubric_status:
        qs = qs.filter(Exists(rubrics.filter(status=rubric_status)))
    if source:
        qs = qs.filter(Exists(Response.objects.filter(prompt=OuterRef("pk"), source=source)))
    return qs


def prompt_get(*, project: Project, prompt_id: int) -> Prompt:
    prompt = Prompt.objects.filter(project=project, pk=prompt_id).first()
    if prompt is None:
        raise Http404("No such prompt.")
    return prompt


def response_sources(*, project: Project, probes: bool = False) -> list[str]:
    """The sources of the project's responses; ``probes``: with those of judge probes'
    perturbed copies (``probe:<kind>``), which a run may choose."""
    responses = Response.objects.filter(prompt__project=project)
    if not probes:
        responses = responses.without_probes()
    return list(responses.order_by("source").values_list("source", flat=True).distinct())
