"""Thin DRF views for co-authoring jobs and proposal decisions: scoped through the project
selector (outsiders 404), one service call each."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse
from rest_framework.views import APIView

from annotation.http import api_user
from annotation.projects.api import ProjectScopedMixin
from annotation.projects.models import Role
from annotation.rubrics.serializers import RubricVersionSerializer
from scoring.coauthoring import proposals as coauthor_proposals
from scoring.coauthoring import selectors as coauthor_selectors
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.models import CoauthorJob
from scoring.coauthoring.serializers import (
    DecisionSerializer,
    JobCreateSerializer,
    JobSerializer,
    ProposalSerializer,
)


class JobListApi(ProjectScopedMixin, generics.ListAPIView[CoauthorJob]):
    """Co-authoring jobs; POST starts one (a single prompt or a batch)."""

    serializer_class = JobSerializer
    read_role = Role.EDITOR

    def get_queryset(self) -> QuerySet[CoauthorJob]:
        return self.get_project().coauthor_jobs.select_related("endpoint")

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()  # access first: 404/403 never depend on the body
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = coauthor_services.job_start(
            project=project,
            actor=api_user(request),
            kind=data["kind"],
            prompt_ids=data["prompts"],
            label_ids=data["labels"],
            reference=data["reference"],
            endpoint_id=data["endpoint"],
        )
        return DRFResponse(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailApi(ProjectScopedMixin, APIView):
    read_role = Role.EDITOR

    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, slug: str, pk: int) -> DRFResponse:
        job = coauthor_selectors.job_get(project=self.get_project(), job_id=pk)
        body = JobSerializer(job).data
        body["proposals"] = ProposalSerializer(job.proposals.all(), many=True).data
        return DRFResponse(body)


class ProposalDecideApi(ProjectScopedMixin, APIView):
    """Accept some or all of a proposal's changes as one new version, or reject it."""

    read_role = Role.EDITOR

    @extend_schema(request=DecisionSerializer, responses={200: RubricVersionSerializer})
    def post(self, request: Request, slug: str, pk: int) -> DRFResponse:
        proposal = coauthor_selectors.proposal_get(project=self.get_project(), proposal_id=pk)
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = coauthor_proposals.proposal_decide(
            proposal=proposal, actor=api_user(request), accept=serializer.validated_data["accept"]
        )
        proposal.refresh_from_db()
        return DRFResponse(
            {
                "proposal": ProposalSerializer(proposal).data,
                "version": RubricVersionSerializer(version).data if version else None,
            }
        )
