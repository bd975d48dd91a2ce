"""Thin DRF views for projects and members: scope through selectors, one service call,
serialize the result. ``ProjectScopedMixin`` is what every project-scoped API view uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.errors import NotAllowed
from annotation.http import api_user
from annotation.projects import selectors as project_selectors
from annotation.projects import services as project_services
from annotation.projects.models import Membership, Project, Role
from annotation.projects.serializers import (
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    ProjectCreateSerializer,
    ProjectDetailSerializer,
    ProjectSerializer,
)

# To the type checker the mixin is an APIView (what it is always mixed into), so that it
# knows ``request``, ``kwargs`` and the ``options`` it extends; at run time it is a plain
# mixin, before the view class in the bases.
if TYPE_CHECKING:
    _ViewBase = APIView
else:
    _ViewBase = object


class ProjectScopedMixin(_ViewBase):
    """Resolves ``slug`` to a project the user may see; writes need ``write_role``.

    OPTIONS answers like a read: outsiders get 404 there too, so no method of a project's
    URL tells an outsider anything about it."""

    read_role = Role.VIEWER
    write_role = Role.EDITOR

    # A DRF Request where Django's View.options has an HttpRequest: APIView.options (in the
    # DRF stubs too) overrides it so.
    def options(  # type: ignore[override]
        self, request: Request, *args: Any, **kwargs: Any
    ) -> DRFResponse:
        self.get_project()
        return super().options(request, *args, **kwargs)

    def get_access(self) -> project_selectors.ProjectAccess:
        if not hasattr(self, "_access"):
            safe = self.request.method in ("GET", "HEAD", "OPTIONS")
            self._access = project_selectors.project_get_for_user(
                user=self.request.user,
                slug=self.kwargs["slug"],
                min_role=self.read_role if safe else self.write_role,
            )
        return self._access

    def get_project(self) -> Project:
        return self.get_access().project


class ProjectListApi(generics.ListAPIView[Project]):
    serializer_class = ProjectSerializer

    def get_queryset(self) -> QuerySet[Project]:
        return project_selectors.projects_for_user(user=self.request.user).order_by("slug")

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def post(self, request: Request) -> DRFResponse:
        if not project_selectors.can_create_projects(
            user=request.user
        ):  # 403 before any validation
            raise NotAllowed("Only staff users may create projects (ALLOW_PROJECT_CREATION).")
        serializer = ProjectCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = project_services.project_create(
            owner=api_user(request), **serializer.validated_data
        )
        body = ProjectSerializer(project, context={"role": Role.OWNER}).data
        return DRFResponse(body, status=status.HTTP_201_CREATED)


class ProjectDetailApi(ProjectScopedMixin, APIView):
    @extend_schema(responses=ProjectDetailSerializer)
    def get(self, request: Request, slug: str) -> DRFResponse:
        access = self.get_access()
        counts = project_selectors.project_counts(project=access.project)
        context = {"role": access.role, "counts": counts}
        return DRFResponse(ProjectDetailSerializer(access.project, context=context).data)


class MemberListApi(ProjectScopedMixin, generics.ListAPIView[Membership]):
    serializer_class = MembershipSerializer
    write_role = Role.OWNER

    def get_queryset(self) -> QuerySet[Membership]:
        return project_selectors.memberships_of(project=self.get_project())

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "show_email": self.get_access().is_owner}

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        serializer = MembershipCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = project_services.membership_add(
            project=project, actor=api_user(request), **serializer.validated_data
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

    def _body(self, membership: Membership) -> dict[str, Any]:
        context = {"show_email": self.get_access().is_owner}
        return MembershipSerializer(membership, context=context).data

    @extend_schema(responses=MembershipSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        return DRFResponse(self._body(self._membership()))

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def patch(self, request: Request, slug: str, pk: int) -> DRFResponse:
        membership = self._membership()
        serializer = MembershipUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = project_services.membership_set_role(
            membership=membership, actor=api_user(request), **serializer.validated_data
        )
        return DRFResponse(self._body(membership))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> DRFResponse:
        project_services.membership_remove(membership=self._membership(), actor=api_user(request))
        return DRFResponse(status=status.HTTP_204_NO_CONTENT)
