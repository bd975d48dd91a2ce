"""Thin DRF views: scope through selectors, one service call, serialize the result."""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from . import selectors, services
from .models import Criterion, Membership, Project, Role, Rubric, RubricVersion
from .serializers import (
    ConflictSerializer,
    ImportReportSerializer,
    ImportRequestSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    ProjectCreateSerializer,
    ProjectDetailSerializer,
    ProjectSerializer,
    PromptSerializer,
    ResponseSerializer,
    RubricSerializer,
    RubricVersionCreateSerializer,
    RubricVersionSerializer,
    RubricWorkflowSerializer,
)


class ProjectScopedMixin:
    """Resolves ``slug`` to a project the user may see; writes need ``write_role``."""

    read_role = Role.VIEWER
    write_role = Role.EDITOR
    request: Request
    kwargs: dict

    def get_project(self) -> Project:
        if not hasattr(self, "_project"):
            safe = self.request.method in ("GET", "HEAD", "OPTIONS")
            self._project = selectors.project_get_for_user(
                user=self.request.user,
                slug=self.kwargs["slug"],
                min_role=self.read_role if safe else self.write_role,
            )
        return self._project


class ProjectListApi(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.projects_for_user(user=self.request.user).order_by("slug")

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def post(self, request: Request) -> DRFResponse:
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **serializer.validated_data)
        project.user_role = Role.OWNER  # type: ignore[attr-defined]
        return DRFResponse(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(ProjectScopedMixin, APIView):
    @extend_schema(responses=ProjectDetailSerializer)
    def get(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        project.counts = selectors.project_counts(project=project)  # type: ignore[attr-defined]
        return DRFResponse(ProjectDetailSerializer(project).data)


class PromptListApi(ProjectScopedMixin, generics.ListAPIView):
    serializer_class = PromptSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Search external ids and message text."),
            OpenApiParameter("has_rubric", str, enum=["yes", "no"]),
            OpenApiParameter("rubric_status", str, enum=Rubric.Status.values),
            OpenApiParameter("source", str, description="Only prompts with a response from it."),
        ]
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> DRFResponse:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        params = self.request.query_params
        return selectors.prompt_list(
            project=self.get_project(),
            q=params.get("q", ""),
            has_rubric=params.get("has_rubric", ""),
            rubric_status=params.get("rubric_status", ""),
            source=params.get("source", ""),
        )


class PromptDetailApi(ProjectScopedMixin, generics.RetrieveAPIView):
    serializer_class = PromptSerializer

    def get_object(self):  # type: ignore[no-untyped-def]
        return selectors.prompt_get(project=self.get_project(), prompt_id=self.kwargs["pk"])


class ResponseListApi(ProjectScopedMixin, generics.ListAPIView):
    serializer_class = ResponseSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("prompt", int),
            OpenApiParameter("source", str),
        ]
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> DRFResponse:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        from .models import Response

        qs = Response.objects.filter(prompt__project=self.get_project()).order_by("id")
        params = self.request.query_params
        if params.get("prompt", "").isdigit():
            qs = qs.filter(prompt_id=int(params["prompt"]))
        if params.get("source"):
            qs = qs.filter(source=params["source"])
        return qs


class RubricListApi(ProjectScopedMixin, generics.ListAPIView):
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

    def get_queryset(self):  # type: ignore[no-untyped-def]
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

    def paginate_queryset(self, queryset):  # type: ignore[no-untyped-def]
        page = super().paginate_queryset(queryset)
        # One query for every rubric's current criteria on the page.
        by_version: dict[int, list[Criterion]] = {}
        ids = [r.current_version_id for r in page or [] if r.current_version_id]
        for c in Criterion.objects.filter(version_id__in=ids).order_by("version_id", "position"):
            by_version.setdefault(c.version_id, []).append(c)
        for rubric in page or []:
            rubric.current_criteria = by_version.get(rubric.current_version_id, [])
        return page


class RubricDetailApi(ProjectScopedMixin, generics.RetrieveAPIView):
    serializer_class = RubricSerializer

    def get_object(self):  # type: ignore[no-untyped-def]
        return get_object_or_404(
            Rubric.objects.select_related("current_version").prefetch_related(
                Prefetch("current_version__criteria")
            ),
            project=self.get_project(),
            pk=self.kwargs["pk"],
        )


class RubricVersionListApi(ProjectScopedMixin, generics.ListAPIView):
    """A rubric's versions, newest first; POST saves a new version on a base version."""

    serializer_class = RubricVersionSerializer

    def _rubric(self) -> Rubric:
        return selectors.rubric_get(project=self.get_project(), rubric_id=self.kwargs["pk"])

    def get_queryset(self):  # type: ignore[no-untyped-def]
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
        services.rubric_version_create(
            rubric=rubric,
            criteria=[services.CriterionInput(**c) for c in data["criteria"]],
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
        rubric = selectors.rubric_get(project=self.get_project(), rubric_id=pk)
        serializer = RubricWorkflowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        action, comment = serializer.validated_data["action"], serializer.validated_data["comment"]
        if action == "submit":
            rubric = services.rubric_submit_for_review(rubric=rubric, actor=request.user)
        elif action == "archive":
            rubric = services.rubric_archive(rubric=rubric, actor=request.user)
        else:
            rubric = services.rubric_review(
                rubric=rubric, actor=request.user, decision=action, comment=comment
            )
        return DRFResponse(RubricSerializer(rubric).data)


class MemberListApi(ProjectScopedMixin, generics.ListAPIView):
    serializer_class = MembershipSerializer
    write_role = Role.OWNER

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.memberships_of(project=self.get_project())

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_add(
            project=project, actor=request.user, **serializer.validated_data
        )
        return DRFResponse(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(ProjectScopedMixin, APIView):
    write_role = Role.OWNER

    def _membership(self) -> Membership:
        return get_object_or_404(
            Membership.objects.select_related("user"),
            project=self.get_project(),
            pk=self.kwargs["pk"],
        )

    @extend_schema(responses=MembershipSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        return DRFResponse(MembershipSerializer(self._membership()).data)

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def patch(self, request: Request, slug: str, pk: int) -> DRFResponse:
        membership = self._membership()
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_set_role(
            membership=membership, actor=request.user, **serializer.validated_data
        )
        return DRFResponse(MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> DRFResponse:
        services.membership_remove(membership=self._membership(), actor=request.user)
        return DRFResponse(status=status.HTTP_204_NO_CONTENT)


class ImportApi(ProjectScopedMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={
            201: ImportReportSerializer,
            200: ImportReportSerializer,
            400: ImportReportSerializer,
        },
        description="Import a file (atomic: a file with any bad record imports nothing).",
    )
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        serializer = ImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        report = services.data_import_upload(
            project=project,
            upload=upload,
            fmt=serializer.validated_data.get("format") or None,
            actor=request.user,
        )
        if not report.ok:
            code = status.HTTP_400_BAD_REQUEST
        elif report.changed:
            code = status.HTTP_201_CREATED
        else:
            code = status.HTTP_200_OK
        return DRFResponse(ImportReportSerializer(report.as_dict()).data, status=code)
