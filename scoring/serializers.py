from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scoring.exports.options import FORMATS, KINDS, ORIGINS, ExportOptions
from scoring.models import CoauthorJob, Export, JudgeEndpoint, LLMProvider, Proposal
from scoring.services.endpoints import KEY_FIELDS, NO_KEY_FIELDS
from scoring.services.exports import DEFAULT_ORIGINS


class EndpointSerializer(serializers.ModelSerializer):
    provider = serializers.PrimaryKeyRelatedField(
        queryset=LLMProvider.objects.filter(enabled=True),
        allow_null=True,
        required=False,
        help_text="A provider the site admin made available to the project (its base URL and "
        "key); null: no key is sent, to the base URL given here.",
    )
    provider_name = serializers.CharField(source="provider.name", read_only=True, default=None)
    key_variable = serializers.CharField(
        source="provider.api_key_env",
        read_only=True,
        default=None,
        help_text="The NAME of the provider's key variable (never the key).",
    )

    class Meta:
        model = JudgeEndpoint
        fields = [
            "id",
            "name",
            "backend",
            "provider",
            "provider_name",
            "key_variable",
            "base_url",
            "model",
            "temperature",
            "max_tokens",
            "timeout",
            "max_concurrency",
            "rpm",
            "tpm",
            "price_input_per_m",
            "price_output_per_m",
            "model_path",
            "dtype",
            "device",
            "batch_tokens",
            "threshold",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"model": {"required": False, "allow_blank": True}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Not silently dropped: someone sending a key variable must learn it is not used.
        if any(name in self.initial_data for name in KEY_FIELDS):
            raise serializers.ValidationError({"api_key_env": NO_KEY_FIELDS})
        return attrs


class JobCreateSerializer(serializers.Serializer):
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


class ProposalSerializer(serializers.ModelSerializer):
    prompt = serializers.PrimaryKeyRelatedField(read_only=True)
    rubric = serializers.PrimaryKeyRelatedField(read_only=True)

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


class JobSerializer(serializers.ModelSerializer):
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


class DecisionSerializer(serializers.Serializer):
    accept = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Criterion keys of the changes to accept; null accepts all, [] rejects.",
    )


class ExportCreateSerializer(serializers.Serializer):
    """An export's options (``scoring.exports.options.ExportOptions``)."""

    kind = serializers.ChoiceField(choices=list(KINDS.items()))
    format = serializers.ChoiceField(choices=list(FORMATS.items()), default="jsonl")
    versions = serializers.ChoiceField(choices=["approved", "latest"], default="approved")
    ratios = serializers.ListField(
        child=serializers.FloatField(min_value=0),
        min_length=3,
        max_length=3,
        default=[1.0, 0.0, 0.0],
        help_text="Train, validation and test shares, adding up to 1.",
    )
    tags = serializers.ListField(child=serializers.CharField(), default=list)
    sources = serializers.ListField(
        child=serializers.CharField(), default=list, help_text="Empty: every source."
    )
    since = serializers.DateField(required=False, allow_null=True, default=None)
    until = serializers.DateField(required=False, allow_null=True, default=None)
    exclude = serializers.ListField(
        child=serializers.CharField(),
        default=list,
        help_text="Prompt external ids or prompt texts to leave out (contamination).",
    )
    origins = serializers.ListField(
        child=serializers.ChoiceField(choices=list(ORIGINS)),
        default=list(DEFAULT_ORIGINS),
        help_text="Preference pairs: where the label came from.",
    )
    min_agreement = serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True, default=None
    )
    consistent_only = serializers.BooleanField(default=False)
    min_margin = serializers.FloatField(min_value=0, default=0.0)
    conversational = serializers.BooleanField(default=True)
    margins = serializers.BooleanField(
        default=False,
        help_text=(
            "Preference pairs: a `margin` column (the rubric judge's margin; needs the judge "
            "origin; pairs without one are left out). TRL's RewardTrainer subtracts it in its "
            "loss; without it there is no such column."
        ),
    )
    license = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

    def to_options(self) -> ExportOptions:
        data = dict(self.validated_data)
        for name in ("since", "until"):
            data[name] = data[name].isoformat() if data.get(name) else ""
        return ExportOptions.from_dict(data)


class ExportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.CharField(help_text="Where to download it (streamed).")


class ExportSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    files = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "kind",
            "format",
            "options",
            "status",
            "rows_total",
            "rows_done",
            "files",
            "error",
            "studio_version",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(ExportFileSerializer(many=True))
    def get_files(self, export: Export) -> list[dict[str, Any]]:
        request = self.context.get("request")
        files = []
        for f in export.files:
            url = reverse(
                "api-export-file",
                kwargs={"slug": export.project.slug, "pk": export.pk, "name": f["name"]},
            )
            files.append({**f, "url": request.build_absolute_uri(url) if request else url})
        return files
