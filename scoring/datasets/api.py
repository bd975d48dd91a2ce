"""Thin DRF views for dataset exports and their files: scoped through the project selector
(outsiders 404), one service call each."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, renderers, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.projects.api import ProjectScopedMixin
from annotation.projects.models import Role
from scoring.datasets import services as export_services
from scoring.datasets.models import Export
from scoring.datasets.serializers import ExportCreateSerializer, ExportSerializer


class _FileRenderer(renderers.BaseRenderer):
    """Lets a client ask for the file itself (``Accept: application/octet-stream``); an
    error then comes back as JSON all the same."""

    media_type = "application/octet-stream"
    format = "bin"
    charset = None
    render_style = "binary"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")


class ExportListApi(ProjectScopedMixin, generics.ListAPIView[Export]):
    """Viewers and up list a project's exports; editors and owners start one (it runs in
    the background: poll its detail for progress and files)."""

    serializer_class = ExportSerializer

    def get_queryset(self) -> QuerySet[Export]:
        return export_services.exports_of(project=self.get_project())

    @extend_schema(request=ExportCreateSerializer, responses={201: ExportSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()  # access first: 404/403 never depend on the body
        serializer = ExportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = export_services.export_create(
            project=project, actor=request.user, options=serializer.to_options()
        )
        body = ExportSerializer(export, context={"request": request}).data
        return DRFResponse(body, status=status.HTTP_201_CREATED)


class ExportDetailApi(ProjectScopedMixin, APIView):
    """An export's status, progress and files; owners delete it (and its files)."""

    write_role = Role.OWNER

    def _export(self) -> Export:
        return export_services.export_get(project=self.get_project(), export_id=self.kwargs["pk"])

    @extend_schema(responses=ExportSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        return DRFResponse(ExportSerializer(self._export(), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, pk: int) -> DRFResponse:
        export_services.export_delete(export=self._export(), actor=request.user)
        return DRFResponse(status=status.HTTP_204_NO_CONTENT)


class ExportFileApi(ProjectScopedMixin, APIView):
    """One file of a finished export, streamed as an attachment. Exports that carry the
    judge's per-item verdicts (judge distillation; preference pairs with the judge among
    their origins) are for editors and owners: reviewers review blind."""

    renderer_classes = [renderers.JSONRenderer, _FileRenderer]

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request: Request, slug: str, pk: int, name: str) -> FileResponse:
        project = self.get_project()
        export = export_services.export_get(project=project, export_id=pk)
        export_services.export_check_download(export=export, role=self.get_access().role)
        path = export_services.export_file(export, name)
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=export_services.download_name(export, name),
        )
