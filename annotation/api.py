"""Thin DRF views: scope through selectors, one service call, serialize the result."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from . import selectors, services
from .models import Membership, Project, Role, Rubric
from .serializers import (
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
        description=(
            "Import a file. Atomic by default: a file with any bad record imports nothing "
            "(400, the bad lines in `errors`). With `skip_invalid` the valid records are "
            "imported and the bad ones are skipped and listed in `errors`."
        ),
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
            skip_invalid=serializer.validated_data["skip_invalid"],
        )
        if not report.committed:
            code = status.HTTP_400_BAD_REQUEST
        elif report.changed:
            code = status.HTTP_201_CREATED
        else:
            code = status.HTTP_200_OK
        return DRFResponse(ImportReportSerializer(report.as_dict()).data, status=code)
