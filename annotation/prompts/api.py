"""Prompts and responses (read), and the import API: upload a file (imported at once when
small, else a job for a worker) and follow a job until its report is there. Imports are for
editors and owners; outsiders get 404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.errors import ApplicationError
from annotation.projects.api import ProjectScopedMixin
from annotation.projects.models import Role
from annotation.prompts import import_jobs as prompt_import_jobs
from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.import_report import ImportReport
from annotation.prompts.models import ImportJob, Prompt, Response
from annotation.prompts.serializers import (
    ImportJobSerializer,
    ImportReportSerializer,
    ImportRequestSerializer,
    PromptSerializer,
    ResponseSerializer,
)
from annotation.prompts.uploads import UploadCap, cap_uploads
from annotation.rubrics.models import Rubric


class ImportApi(ProjectScopedMixin, APIView):
    parser_classes = [MultiPartParser, FormParser]
    upload_cap: UploadCap | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # Before DRF (or its session CSRF check) reads the body: an upload over the cap
        # is then refused unread.
        if request.method == "POST":
            self.upload_cap = cap_uploads(request)
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": ImportRequestSerializer},
        responses={
            201: ImportReportSerializer,
            200: ImportReportSerializer,
            202: ImportJobSerializer,
            400: ImportReportSerializer,
            413: OpenApiResponse(description="The upload is over IMPORT_MAX_UPLOAD_BYTES."),
        },
        description=(
            "Import a file. Atomic by default: a file with any bad record imports nothing "
            "(400, the bad lines in `errors`). With `skip_invalid` the valid records are "
            "imported and the bad ones are skipped and listed in `errors`. A file holding "
            "more than IMPORT_INLINE_MAX_BYTES of data is imported by a worker: the answer "
            "is 202 with the job (its `url` gives the progress, then the report). A file "
            "over one of the import caps is refused (400, or 413 for the upload size) with "
            "a `detail` naming the cap."
        ),
    )
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()
        data = request.data  # reads the body, under the cap
        if self.upload_cap is not None and self.upload_cap.refused:
            raise prompt_import_jobs.UploadTooLarge(self.upload_cap.message)
        serializer = ImportRequestSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        job = prompt_import_jobs.import_start(
            project=project,
            upload=serializer.validated_data["file"],
            fmt=serializer.validated_data.get("format") or None,
            actor=request.user,
            skip_invalid=serializer.validated_data["skip_invalid"],
        )
        if not job.finished:
            body = ImportJobSerializer(job).data
            return DRFResponse(
                body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]}
            )
        if job.status == ImportJob.Status.FAILED:
            raise ApplicationError(job.error)
        report = ImportReport.from_dict(job.report)
        code: int
        if not report.committed:
            code = status.HTTP_400_BAD_REQUEST
        elif report.changed:
            code = status.HTTP_201_CREATED
        else:
            code = status.HTTP_200_OK
        return DRFResponse(ImportReportSerializer(report.as_dict()).data, status=code)


class ImportJobApi(ProjectScopedMixin, APIView):
    read_role = Role.EDITOR

    @extend_schema(responses=ImportJobSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        job = prompt_import_jobs.import_job_get(project=self.get_project(), job_id=pk)
        return DRFResponse(ImportJobSerializer(job).data)


class PromptListApi(ProjectScopedMixin, generics.ListAPIView[Prompt]):
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

    def get_queryset(self) -> QuerySet[Prompt]:
        params = self.request.query_params
        return prompt_selectors.prompt_list(
            project=self.get_project(),
            q=params.get("q", ""),
            has_rubric=params.get("has_rubric", ""),
            rubric_status=params.get("rubric_status", ""),
            source=params.get("source", ""),
        )


class PromptDetailApi(ProjectScopedMixin, generics.RetrieveAPIView[Prompt]):
    serializer_class = PromptSerializer

    def get_object(self) -> Prompt:
        return prompt_selectors.prompt_get(project=self.get_project(), prompt_id=self.kwargs["pk"])


class ResponseListApi(ProjectScopedMixin, generics.ListAPIView[Response]):
    serializer_class = ResponseSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("prompt", int),
            OpenApiParameter("source", str),
        ]
    )
    def get(self, request: Request, *args: object, **kwargs: object) -> DRFResponse:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Response]:
        qs = Response.objects.filter(prompt__project=self.get_project()).order_by("id")
        params = self.request.query_params
        if params.get("prompt", "").isdigit():
            qs = qs.filter(prompt_id=int(params["prompt"]))
        # a judge probe's copies only when their source is asked for
        source = params.get("source")
        return qs.filter(source=source) if source else qs.without_probes()
