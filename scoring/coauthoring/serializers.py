"""API shapes of co-authoring jobs, proposals and decisions."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.prompts.models import Prompt
from annotation.rubrics.models import Rubric
from scoring.coauthoring.models import CoauthorJob, Proposal


class JobCreateSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=CoauthorJob.Kind.choices)
    prompts = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    labels = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        default=list,
        help_text="Preference pairs, for contrastive generation.",
    )
    reference = serializers.CharField(required=False, allow_blank=True, default="")
    endpoint = serializers.IntegerField(required=False, allow_null=True, default=None)


class ProposalSerializer(serializers.ModelSerializer[Proposal]):
    prompt: serializers.PrimaryKeyRelatedField[Prompt] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )
    rubric: serializers.PrimaryKeyRelatedField[Rubric] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )

    class Meta:
        model = Proposal
        fields = [
            "id",
            "prompt",
            "rubric",
            "kind",
            "round",
            "base_number",
            "criteria",
            "notes",
            "model",
            "template_version",
            "status",
            "error",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cost",
            "result_version",
        ]


class JobSerializer(serializers.ModelSerializer[CoauthorJob]):
    endpoint = serializers.CharField(source="endpoint.name", allow_null=True, default=None)

    class Meta:
        model = CoauthorJob
        fields = [
            "id",
            "kind",
            "status",
            "endpoint",
            "model",
            "template_version",
            "total",
            "done",
            "failed",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cost",
            "error",
            "created_at",
            "finished_at",
        ]


class DecisionSerializer(serializers.Serializer[Any]):
    accept = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Criterion keys of the changes to accept; null accepts all, [] rejects.",
    )
