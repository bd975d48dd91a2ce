"""Thin DRF views: scope through selectors, one service call, serialize the result."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation import selectors, services
from annotation.errors import NotAllowed
from annotation.models import Membership, Project, Role, Rubric
from annotation.serializers import (
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
    """Resolves ``slug`` to a project the user may see; writes need ``write_role``.

    OPTIONS answers like a read: outsiders get 404 there too, so no method of a project's
    URL tells an outsider anything about it."""

    read_role = Role.VIEWER
    write_role = Role.EDITOR
    request: Request
    kwargs: dict

    def options(self, request: Request, *args: object, **kwargs: object) -> DRFResponse:
        self.get_project()
        return super().options(request, *args, **kwargs)  # type: ignore[misc]

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
        if not selectors.can_create_projects(user=request.user):  # 403 before any validation
            raise NotAllowed("Only staff users may create projects (ALLOW_PROJECT_CREATION).")
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
        from annotation.models import Response

        qs = Response.objects.filter(prompt__project=self.get_project()).order_by("id")
        params = self.request.query_params
        if params.get("prompt", "").isdigit():
            qs = qs.filter(prompt_id=int(params["prompt"]))
        if params.get("source"):
            qs = qs.filter(source=params["source"])
        return qs


def _show_email(project: Project) -> bool:
    """Members' e-mail addresses are for the project's owners only."""
    return selectors.role_at_least(project.user_role, Role.OWNER)  # type: ignore[attr-defined]


class MemberListApi(ProjectScopedMixin, generics.ListAPIView):
    serializer_class = MembershipSerializer
    write_role = Role.OWNER

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.memberships_of(project=self.get_project())

    def get_serializer_context(self) -> dict:  # type: ignore[type-arg]
        return {**super().get_serializer_context(), "show_email": _show_email(self.get_project())}

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_add(
            project=project, actor=request.user, **serializer.validated_data
        )
        body = MembershipSerializer(membership, context={"show_email": True}).data
        return DRFResponse(body, status=status.HTTP_201_CREATED)


class MemberDetailApi(ProjectScopedMixin, APIView):
    write_role = Role.OWNER

    def _membership(self) -> Membership:
        return get_object_or_404(
            Membership.objects.select_related("user"),
            project=self.get_project(),
            pk=self.kwargs["pk"],
        )

    def _body(self, membership: Membership) -> dict:  # type: ignore[type-arg]
        context = {"show_email": _show_email(self.get_project())}
        return MembershipSerializer(membership, context=context).data

    @extend_schema(responses=MembershipSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        return DRFResponse(self._body(self._membership()))

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def patch(self, request: Request, slug: str, pk: int) -> DRFResponse:
        membership = self._membership()
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_set_role(
            membership=membership, actor=request.user, **serializer.validated_data
        )
        return DRFResponse(self._body(membership))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> DRFResponse:
        services.membership_remove(membership=self._membership(), actor=request.user)
        return DRFResponse(status=status.HTTP_204_NO_CONTENT)
