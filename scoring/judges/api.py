"""Thin DRF views for judge endpoints: scoped through the project selector (outsiders 404),
one service call each."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.projects.api import ProjectScopedMixin
from annotation.projects.models import Role
from scoring.judges import selectors as judge_selectors
from scoring.judges import services as judge_services
from scoring.judges.models import JudgeEndpoint
from scoring.judges.serializers import EndpointSerializer


class EndpointListApi(ProjectScopedMixin, generics.ListAPIView[JudgeEndpoint]):
    """Editors list endpoints; owners add them."""

    serializer_class = EndpointSerializer
    read_role = Role.EDITOR
    write_role = Role.OWNER

    def get_queryset(self) -> QuerySet[JudgeEndpoint]:
        return judge_selectors.endpoints_of(project=self.get_project())

    @extend_schema(request=EndpointSerializer, responses={201: EndpointSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()  # access first: 404/403 never depend on the body
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = judge_services.endpoint_save(
            project=project, actor=request.user, data=serializer.validated_data
        )
        return DRFResponse(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(ProjectScopedMixin, APIView):
    read_role = Role.EDITOR
    write_role = Role.OWNER

    def _endpoint(self) -> JudgeEndpoint:
        return judge_selectors.endpoint_get(
            project=self.get_project(), endpoint_id=self.kwargs["pk"]
        )

    @extend_schema(responses=EndpointSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        return DRFResponse(EndpointSerializer(self._endpoint()).data)

    @extend_schema(request=EndpointSerializer, responses=EndpointSerializer)
    def patch(self, request: Request, slug: str, pk: int) -> DRFResponse:
        endpoint = self._endpoint()
        serializer = EndpointSerializer(endpoint, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = judge_services.endpoint_save(
            project=self.get_project(),
            actor=request.user,
            data=serializer.validated_data,
            endpoint=endpoint,
        )
        return DRFResponse(EndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> DRFResponse:
        judge_services.endpoint_delete(endpoint=self._endpoint(), actor=request.user)
        return DRFResponse(status=status.HTTP_204_NO_CONTENT)
