"""API shapes of dataset exports."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scoring.datasets.models import Export
from scoring.datasets.options import FORMATS, KINDS, ORIGINS, ExportOptions
from scoring.datasets.services import DEFAULT_ORIGINS


class ExportCreateSerializer(serializers.Serializer):
    """An export's options (``scoring.datasets.options.ExportOptions``)."""

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
