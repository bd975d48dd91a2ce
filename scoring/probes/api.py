"""Judge probes over the API, with the pages' permissions: viewers and up list probes and
read a probe with its report; editors and owners start one. Scoped through the project
selector (outsiders 404), one service call each."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response as DRFResponse

from annotation.http import api_user
from annotation.projects.api import ProjectScopedMixin
from scoring.coauthoring import services as coauthor_services
from scoring.probes import services as probe_services
from scoring.probes.models import Probe
from scoring.probes.services import KINDS, MAX_SAMPLE, MODES
from scoring.runs.models import Run
from scoring.runs.subsets import Subset, subset_prompt_ids


class ProbeCreateSerializer(serializers.Serializer[Any]):
    """A probe's options, as the page's form takes them."""

    endpoint = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="The judge; empty: the default."
    )
    rewriter = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The LLM that writes causal rewrites; empty: the co-authoring default.",
    )
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=KINDS), min_length=1)
    sample = serializers.IntegerField(min_value=1, max_value=MAX_SAMPLE)
    seed = serializers.IntegerField(min_value=0, required=False, default=0)
    samples = serializers.IntegerField(
        min_value=1,
        max_value=5,
        required=False,
        default=2,
        help_text="2 or more: the report also measures the judge's own noise.",
    )
    mode = serializers.ChoiceField(choices=list(MODES), default=Run.Mode.PER_CRITERION)
    versions = serializers.ChoiceField(choices=Run.Versions.choices, default=Run.Versions.LATEST)
    sources = serializers.ListField(
        child=serializers.CharField(), required=False, default=list, help_text="Empty: all."
    )
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    prompts = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="External ids of the prompts to sample from (empty: every prompt).",
    )


class ProbeSerializer(serializers.ModelSerializer[Probe]):
    judge = serializers.SerializerMethodField()
    run_status = serializers.CharField(source="run.status", read_only=True)

    class Meta:
        model = Probe
        fields = [
            "id", "run", "run_status", "phase", "kinds", "sample", "seed", "judge", "rewriter",
            "rewrite_template", "note", "report", "reported_at", "calls", "prompt_tokens",
            "completion_tokens", "cost", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_judge(self, probe: Probe) -> dict[str, Any]:
        run = probe.run
        return {"endpoint": run.endpoint_id, "model": run.model,
                "template": run.template_version, "mode": run.mode, "samples": run.samples}  # fmt: skip


class ProbeListApi(ProjectScopedMixin, generics.ListAPIView[Probe]):
    """The project's judge probes, newest first, each with its phase and report (``report``
    is empty until ``phase`` is ``done``); editors and owners start one."""

    serializer_class = ProbeSerializer

    def get_queryset(self) -> QuerySet[Probe]:
        return Probe.objects.filter(project=self.get_project()).select_related("run")

    @extend_schema(request=ProbeCreateSerializer, responses={201: ProbeSerializer})
    def post(self, request: Request, slug: str) -> DRFResponse:
        project = self.get_project()  # access first: 404/403 never depend on the body
        serializer = ProbeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        endpoint = coauthor_services.endpoint_for(project, data.pop("endpoint"), generating=False)
        rewriter_id = data.pop("rewriter")
        external_ids = tuple(i.strip() for i in data.pop("prompts") if i.strip())
        data["prompt_ids"] = subset_prompt_ids(
            project=project, subset=Subset(external_ids=external_ids)
        )
        rewriter = (
            coauthor_services.endpoint_for(project, rewriter_id, generating=True)
            if probe_services.CAUSAL in data["kinds"]
            else None
        )
        probe = probe_services.probe_create(
            project=project, actor=api_user(request), endpoint=endpoint, rewriter=rewriter, **data
        )
        return DRFResponse(ProbeSerializer(probe).data, status=status.HTTP_201_CREATED)


class ProbeDetailApi(ProjectScopedMixin, generics.RetrieveAPIView[Probe]):
    """A probe: its phase, its run, and once done its report (per kind: flip rate and score
    change with bootstrap intervals, raised share, sensitivity, specificity, goals, the
    worst examples' ids and verdicts; the judge's own noise)."""

    serializer_class = ProbeSerializer

    def get_queryset(self) -> QuerySet[Probe]:
        return Probe.objects.filter(project=self.get_project()).select_related("run")
