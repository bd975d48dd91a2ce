"""Reads of prompts and responses, scoped through a project the caller already checked
access to."""

from __future__ import annotations

from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
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
    """Prompts of a project with the table's filters, annotated for display.

    The annotations are subqueries, not joins: counting the matches (a paginator's count)
    or taking a page of ids then never reads the prompts' responses."""
    rubrics = Rubric.objects.filter(prompt=OuterRef("pk"))
    # a judge probe's copies are not the prompt's responses
    responses = (
        Response.objects.filter(prompt=OuterRef("pk"))
        .without_probes()
        .order_by()
        .values("prompt")
        .annotate(n=Count("pk"))
        .values("n")
    )
    qs = (
        Prompt.objects.filter(project=project)
        .annotate(
            has_rubric=Exists(rubrics),
            response_count=Coalesce(Subquery(responses, output_field=IntegerField()), 0),
        )
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


def prompt_neighbours(*, project: Project, prompt: Prompt) -> tuple[Prompt | None, Prompt | None]:
    """The prompts before and after ``prompt`` in the prompt table's order (by id), with
    their ids only: one index probe each."""
    prompts = Prompt.objects.filter(project=project).only("id")
    return (
        prompts.filter(id__lt=prompt.pk).order_by("-id").first(),
        prompts.filter(id__gt=prompt.pk).order_by("id").first(),
    )


def response_sources(*, project: Project, probes: bool = False) -> list[str]:
    """The sources of the project's responses, in order; ``probes``: with those of judge
    probes' perturbed copies (``probe:<kind>``), which a run may choose.

    Sources are few and responses many: rather than reading every response of the project,
    the distinct sources of all projects are walked on the (source, prompt) index, one probe
    each (a recursive query), and each is kept if a response of this project has it: a
    merge of that source's responses with the project's prompts, both in prompt order, that
    stops at the first match (a subquery with LIMIT, which the planner does not turn into a
    join over everything)."""
    table = connection.ops.quote_name(Response._meta.db_table)
    prompts = connection.ops.quote_name(Prompt._meta.db_table)
    probe_filter = "" if probes else "AND r.source NOT LIKE %s"
    sql = f"""
        WITH RECURSIVE walked(source) AS (
            SELECT MIN(source) FROM {table}
            UNION ALL
            SELECT (SELECT MIN(source) FROM {table} WHERE source > walked.source)
            FROM walked WHERE walked.source IS NOT NULL
        )
        SELECT walked.source FROM walked
        WHERE walked.source IS NOT NULL AND (
            SELECT 1 FROM {table} r INNER JOIN {prompts} p ON r.prompt_id = p.id
            WHERE r.source = walked.source AND p.project_id = %s {probe_filter}
            ORDER BY r.source, r.prompt_id LIMIT 1
        ) = 1
        ORDER BY walked.source
    """  # noqa: S608 - the identifiers are the models' tables; values are parameters
    params: list[int | str] = [project.pk]
    if not probes:
        params.append(f"{PROBE_SOURCE_PREFIX}%")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
