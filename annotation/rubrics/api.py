"""Rubric API: rubrics with their criteria, versions (read one, save on a base version,
409 when stale), the review workflow, criterion comments, and JSON export."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.errors import ApplicationError
from annotation.http import api_user
from annotation.projects.api import ProjectScopedMixin
from annotation.projects.models import Role
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.importers.single_rubric import SHAPES
from annotation.rubrics import comments as rubric_comments
from annotation.rubrics import drafts as rubric_drafts
from annotation.rubrics import selectors as rubric_selectors
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Criterion, CriterionComment, Rubric, RubricVersion
from annotation.rubrics.serializers import (
    CommentCreateSerializer,
    CommentResolveSerializer,
    CommentSerializer,
    ConflictSerializer,
    RubricCreateSerializer,
    RubricDetailSerializer,
    RubricSerializer,
    RubricVersionCreateSerializer,
    RubricVersionDetailSerializer,
    RubricVersionSerializer,
    RubricWorkflowSerializer,
)

_Row = TypeVar("_Row")  # a page's rows, as GenericAPIView.paginate_queryset has them


class RubricListApi(ProjectScopedMixin, generics.ListAPIView[Rubric]):
    serializer_class = RubricSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("prompt", int),
            OpenApiParameter("status", str, enum=Rubric.Status.values),
            OpenApiParameter("scope", str, enum=["prompt", "project"]),
        ]
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> DRFResponse:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Rubric]:
        qs = (
            Rubric.objects.filter(project=self.get_project())
            .select_related("current_version")
            .order_by("id")
        )
        params = self.request.query_params
        if params.get("prompt", "").isdigit():
            qs = qs.filter(prompt_id=int(params["prompt"]))
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        if params.get("scope") == "project":
            qs = qs.filter(prompt__isnull=True)
        elif params.get("scope") == "prompt":
            qs = qs.filter(prompt__isnull=False)
        return qs

    @extend_schema(request=RubricCreateSerializer, responses={201: RubricDetailSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        """Create a prompt's rubric (``prompt``) or a project-wide one (no ``prompt``), with
        its first version when ``criteria`` are given."""
        project = self.get_project()
        serializer = RubricCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        prompt = (
            prompt_selectors.prompt_get(project=project, prompt_id=data["prompt"])
            if data.get("prompt") is not None
            else None
        )
        existing = rubric_selectors.rubric_for_prompt(prompt=prompt) if prompt else None
        if existing is not None:
            raise ApplicationError(f"This prompt already has a rubric (id {existing.pk}).")
        if data["criteria"]:
            rubric = rubric_services.rubric_create(
                project=project,
                prompt=prompt,
                title=data["title"] or (f"Rubric for {prompt.external_id}" if prompt else ""),
                criteria=[rubric_services.CriterionInput(**c) for c in data["criteria"]],
                author=request.user,
                note=data["note"],
            )
        else:
            rubric = rubric_drafts.rubric_start(
                project=project, prompt=prompt, title=data["title"], actor=api_user(request)
            )
        rubric = rubric_selectors.rubric_get(project=project, rubric_id=rubric.pk)
        rubric.version_list = list(rubric_selectors.versions_of(rubric=rubric))  # type: ignore[attr-defined]
        return DRFResponse(RubricDetailSerializer(rubric).data, status=status.HTTP_201_CREATED)

    def paginate_queryset(
        self, queryset: QuerySet[Rubric, _Row] | Sequence[_Row]
    ) -> list[_Row] | None:
        page: list[Any] | None = super().paginate_queryset(queryset)  # this view's rubrics
        # One query for every rubric's current criteria on the page.
        by_version: dict[int, list[Criterion]] = {}
        ids = [r.current_version_id for r in page or [] if r.current_version_id]
        for c in Criterion.objects.filter(version_id__in=ids).order_by("version_id", "position"):
            by_version.setdefault(c.version_id, []).append(c)
        for rubric in page or []:
            rubric.current_criteria = by_version.get(rubric.current_version_id, [])
        return page


class RubricDetailApi(ProjectScopedMixin, APIView):
    """A rubric with its current criteria and the list of its versions."""

    @extend_schema(responses=RubricDetailSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        rubric = rubric_selectors.rubric_get(project=self.get_project(), rubric_id=pk)
        rubric.current_criteria = rubric_selectors.criteria_of(rubric=rubric)  # type: ignore[attr-defined]
        rubric.version_list = list(rubric_selectors.versions_of(rubric=rubric))  # type: ignore[attr-defined]
        return DRFResponse(RubricDetailSerializer(rubric).data)


class RubricVersionListApi(ProjectScopedMixin, generics.ListAPIView[RubricVersion]):
    """A rubric's versions, newest first; POST saves a new version on a base version."""

    serializer_class = RubricVersionSerializer

    def _rubric(self) -> Rubric:
        return rubric_selectors.rubric_get(project=self.get_project(), rubric_id=self.kwargs["pk"])

    def get_queryset(self) -> QuerySet[RubricVersion]:
        return (
            RubricVersion.objects.filter(rubric=self._rubric())
            .select_related("author", "parent")
            .order_by("-number")
        )

    @extend_schema(
        request=RubricVersionCreateSerializer,
        responses={201: RubricSerializer, 409: ConflictSerializer},
    )
    def post(self, request: Request, slug: str, pk: int) -> DRFResponse:
        rubric = self._rubric()
        serializer = RubricVersionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rubric_services.rubric_version_create(
            rubric=rubric,
            criteria=[rubric_services.CriterionInput(**c) for c in data["criteria"]],
            author=request.user,
            note=data["note"],
            base_number=data["base_version"],
            check_base=True,
        )
        rubric.refresh_from_db()
        return DRFResponse(RubricSerializer(rubric).data, status=status.HTTP_201_CREATED)


class RubricWorkflowApi(ProjectScopedMixin, APIView):
    """Move a rubric through draft → in review → approved (→ archived). The role each
    action needs is checked by the workflow service (reviewers review, editors submit)."""

    write_role = Role.VIEWER  # per-action roles are enforced in the service

    @extend_schema(request=RubricWorkflowSerializer, responses=RubricSerializer)
    def post(self, request: Request, slug: str, pk: int) -> DRFResponse:
        rubric = rubric_selectors.rubric_get(project=self.get_project(), rubric_id=pk)
        serializer = RubricWorkflowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        action, comment = serializer.validated_data["action"], serializer.validated_data["comment"]
        if action == "submit":
            rubric = rubric_workflow.rubric_submit_for_review(
                rubric=rubric, actor=api_user(request)
            )
        elif action == "archive":
            rubric = rubric_workflow.rubric_archive(rubric=rubric, actor=api_user(request))
        else:
            rubric = rubric_workflow.rubric_review(
                rubric=rubric, actor=api_user(request), decision=action, comment=comment
            )
        return DRFResponse(RubricSerializer(rubric).data)


class RubricVersionDetailApi(ProjectScopedMixin, APIView):
    """One version with its criteria (versions are immutable)."""

    @extend_schema(responses=RubricVersionDetailSerializer)
    def get(self, request: Request, slug: str, pk: int, number: int) -> DRFResponse:
        rubric = rubric_selectors.rubric_get(project=self.get_project(), rubric_id=pk)
        version = rubric_selectors.version_get(rubric=rubric, number=number)
        version.criteria_list = list(version.criteria.order_by("position"))  # type: ignore[attr-defined]
        return DRFResponse(RubricVersionDetailSerializer(version).data)


class RubricCommentListApi(ProjectScopedMixin, generics.ListAPIView[CriterionComment]):
    """Comments on a rubric's criteria; reviewers and above write them."""

    serializer_class = CommentSerializer
    write_role = Role.REVIEWER

    def _rubric(self) -> Rubric:
        return rubric_selectors.rubric_get(project=self.get_project(), rubric_id=self.kwargs["pk"])

    @extend_schema(
        parameters=[
            OpenApiParameter("criterion", str, description="Only comments on this criterion key."),
            OpenApiParameter("open", bool, description="Only unresolved comments."),
        ]
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> DRFResponse:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[CriterionComment]:
        qs = self._rubric().comments.select_related("author", "resolved_by").order_by("id")
        params = self.request.query_params
        if params.get("criterion"):
            try:
                qs = qs.filter(criterion_key=uuid.UUID(params["criterion"]))
            except ValueError:
                raise ValidationError({"criterion": "Not a criterion key (a UUID)."}) from None
        if params.get("open") in ("1", "true"):
            qs = qs.filter(resolved_at__isnull=True)
        return qs

    @extend_schema(request=CommentCreateSerializer, responses={201: CommentSerializer})
    def post(self, request: Request, slug: str, pk: int) -> DRFResponse:
        rubric = self._rubric()  # access first: an outsider's 404 never depends on the body
        serializer = CommentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment = rubric_comments.comment_add(
            rubric=rubric, author=api_user(request), **serializer.validated_data
        )
        return DRFResponse(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


class RubricCommentResolveApi(ProjectScopedMixin, APIView):
    write_role = Role.REVIEWER

    @extend_schema(request=CommentResolveSerializer, responses=CommentSerializer)
    def post(self, request: Request, slug: str, pk: int, comment_id: int) -> DRFResponse:
        rubric = rubric_selectors.rubric_get(project=self.get_project(), rubric_id=pk)
        serializer = CommentResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment = rubric_comments.comment_resolve(
            comment=rubric_selectors.comment_get(rubric=rubric, comment_id=comment_id),
            actor=api_user(request),
            resolved=serializer.validated_data["resolved"],
        )
        return DRFResponse(CommentSerializer(comment).data)


class RubricExportApi(ProjectScopedMixin, APIView):
    """A saved version as one JSON record in HealthBench or RaR shape."""

    @extend_schema(
        parameters=[
            OpenApiParameter("shape", str, enum=list(SHAPES), default="healthbench"),
            OpenApiParameter("version", int, description="Default: the current version."),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        rubric = rubric_selectors.rubric_get(project=self.get_project(), rubric_id=pk)
        shape = request.query_params.get("shape", "healthbench")
        version = request.query_params.get("version", "")
        if shape not in SHAPES or (version and not (version.isascii() and version.isdigit())):
            return DRFResponse(
                {"detail": "shape is healthbench or rar; version is a number."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        number = int(version) if version else None
        return DRFResponse(
            rubric_selectors.rubric_export_json(rubric=rubric, shape=shape, number=number)
        )
