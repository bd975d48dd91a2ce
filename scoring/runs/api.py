"""Thin DRF views for scoring runs, with the Runs pages' permissions: viewers and up read runs,
their progress and results; editors and owners preview, start and control them. Scoped
through the project selector (outsiders 404), one service call each."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.http import api_user
from annotation.projects.api import ProjectScopedMixin
from annotation.projects.models import Project
from annotation.reviews.api import ReviewQueueSerializer
from annotation.reviews.models import ReviewQueue
from scoring.coauthoring import services as coauthor_services
from scoring.judges.failures import failure_groups
from scoring.judges.models import JudgeEndpoint
from scoring.runs import planning as run_planning
from scoring.runs import review_queue
from scoring.runs import selectors as run_selectors
from scoring.runs import services as run_services
from scoring.runs.models import Run
from scoring.runs.results import run_results
from scoring.runs.serializers import (
    RunControlSerializer,
    RunCreateSerializer,
    RunPreviewSerializer,
    RunResultsSerializer,
    RunSerializer,
)
from scoring.runs.subsets import subset_prompt_ids


def _planned(
    project: Project, data: object
) -> tuple[RunCreateSerializer, list[int], JudgeEndpoint]:
    serializer = RunCreateSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    prompt_ids = subset_prompt_ids(project=project, subset=serializer.to_subset())
    endpoint = coauthor_services.endpoint_for(
        project, serializer.validated_data["endpoint"], generating=False
    )
    return serializer, prompt_ids, endpoint


class RunListApi(ProjectScopedMixin, generics.ListAPIView[Run]):
    """The project's runs, newest first, each with its progress; editors and owners start
    one (its chunks go to the workers once it is stored: poll its detail)."""

    serializer_class = RunSerializer

    def get_queryset(self) -> QuerySet[Run]:
        return Run.objects.filter(project=self.get_project()).select_related("endpoint")

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()  # access first: 404/403 never depend on the body
        serializer, prompt_ids, endpoint = _planned(project, request.data)
        data = serializer.validated_data
        run = run_services.run_create(
            project=project,
            actor=api_user(request),
            endpoint=endpoint,
            budget=data["budget"],
            name=data["name"],
            prompt_ids=prompt_ids,
            **serializer.run_options(),
        )
        return DRFResponse(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunPreviewApi(ProjectScopedMixin, APIView):
    """What a run with these options would do (units, calls, tokens, cost, time, reused
    judgments), as the Runs page's Preview: nothing is stored."""

    @extend_schema(request=RunCreateSerializer, responses=RunPreviewSerializer)
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        serializer, prompt_ids, endpoint = _planned(project, request.data)
        options = serializer.run_options()
        plan = run_planning.plan_units(
            project=project, endpoint=endpoint, prompt_ids=prompt_ids, **options
        )
        preview = run_planning.preview(plan, endpoint=endpoint, mode=options["mode"])
        body = {"prompts": len(prompt_ids), **vars(preview)}
        return DRFResponse(RunPreviewSerializer(body).data)


class RunDetailApi(ProjectScopedMixin, APIView):
    """A run and its progress (done, failed, reused of total; the rate over active time)."""

    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        run = run_selectors.run_get(project=self.get_project(), run_id=pk)
        return DRFResponse(RunSerializer(run).data)


class RunResultsApi(ProjectScopedMixin, APIView):
    """A run's results: scores per source (mean, standard error, histogram), each
    response's score, pairwise verdicts, and failed judgments grouped by reason."""

    @extend_schema(responses=RunResultsSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        run = run_selectors.run_get(project=self.get_project(), run_id=pk)
        results = run_results(run)
        body = {
            "sources": results.sources,
            "responses": results.responses,
            "pairs": results.pairs,
            "failures": failure_groups(j.error for j, _ in results.failures),
        }
        return DRFResponse(RunResultsSerializer(body).data)


class RunControlApi(ProjectScopedMixin, APIView):
    """Pause, resume (optionally with a raised budget), cancel, or retry the failed
    judgments of a run that has ended."""

    @extend_schema(request=RunControlSerializer, responses=RunSerializer)
    def post(self, request: Request, slug: str, pk: int) -> DRFResponse:
        run = run_selectors.run_get(project=self.get_project(), run_id=pk)
        serializer = RunControlSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        action, actor = serializer.validated_data["action"], api_user(request)
        if action == "pause":
            run_services.run_pause(run=run, actor=actor)
        elif action == "cancel":
            run_services.run_cancel(run=run, actor=actor)
        elif action == "resume":
            budget = serializer.validated_data["budget"]
            run_services.run_resume(run=run, actor=actor, budget=budget)
        else:
            run_services.run_retry_failed(run=run, actor=actor)
        run.refresh_from_db()
        return DRFResponse(RunSerializer(run).data)


class RunQueueSerializer(serializers.Serializer[Any]):
    """A review queue of a pairwise run's pairs, as the run's page makes it."""

    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    plan = serializers.ChoiceField(choices=ReviewQueue.Plan.choices, default=ReviewQueue.Plan.ALL)
    sample_size = serializers.IntegerField(
        min_value=1, required=False, allow_null=True, default=None
    )
    overlap = serializers.IntegerField(min_value=1, default=2, help_text="Reviewers per pair.")
    lock_minutes = serializers.IntegerField(min_value=1, default=15)
    show_sources = serializers.BooleanField(default=False)


class RunReviewQueueApi(ProjectScopedMixin, APIView):
    """Editors and owners make a review queue of a pairwise run's pairs."""

    @extend_schema(request=RunQueueSerializer, responses={201: ReviewQueueSerializer})
    def post(self, request: Request, slug: str, pk: int) -> DRFResponse:
        run = run_selectors.run_get(project=self.get_project(), run_id=pk)
        serializer = RunQueueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = dict(serializer.validated_data)
        if not options["name"]:
            del options["name"]  # the run's own name for it
        queue = review_queue.queue_from_run(run=run, actor=api_user(request), **options)
        return DRFResponse(ReviewQueueSerializer(queue).data, status=status.HTTP_201_CREATED)
