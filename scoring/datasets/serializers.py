"""API shapes of dataset exports."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scoring.datasets.kinds.registry import KINDS
from scoring.datasets.models import Export
from scoring.datasets.options import FORMATS, ORIGINS, ExportOptions
from scoring.datasets.services import DEFAULT_ORIGINS, parse_lines, parse_list
from scoring.probes.services import KINDS as PROBE_KINDS


class ExportCreateSerializer(serializers.Serializer[Any]):
    """An export's options (``scoring.datasets.options.ExportOptions``)."""

    kind = serializers.ChoiceField(choices=list(KINDS.items()))
    format = serializers.ChoiceField(choices=list(FORMATS.items()), default="jsonl")
    versions = serializers.ChoiceField(choices=["approved", "latest"], default="approved")
    ratios = serializers.ListField(
        child=serializers.FloatField(
            min_value=0, error_messages={"invalid": "Each share must be a number."}
        ),
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
        min_value=0,
        max_value=1,
        required=False,
        allow_null=True,
        default=None,
        error_messages={"invalid": "The minimum agreement must be a number."},
    )
    consistent_only = serializers.BooleanField(default=False)
    min_margin = serializers.FloatField(
        min_value=0, default=0.0, error_messages={"invalid": "The minimum margin must be a number."}
    )
    conversational = serializers.BooleanField(default=True)
    margins = serializers.BooleanField(
        default=False,
        help_text=(
            "Preference pairs: a `margin` column (the rubric judge's margin; needs the judge "
            "origin; pairs without one are left out). TRL's RewardTrainer subtracts it in its "
            "loss; without it there is no such column."
        ),
    )
    probe_kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=list(PROBE_KINDS)),
        default=list,
        help_text="Augmented pairs: these perturbation kinds (empty: all).",
    )
    probe_passed_only = serializers.BooleanField(
        default=False, help_text="Augmented pairs: only those the probe's judge passed."
    )
    license = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

    @classmethod
    def from_page(cls, post: QueryDict) -> ExportCreateSerializer:
        """The Exports page's form in this shape (its shares as three boxes, tags as one
        comma-separated line, the exclusion list one entry a line), to be validated by the
        same rules as the API's requests."""
        return cls(
            data={
                "kind": post.get("kind", ""),
                "format": post.get("format", "jsonl"),
                "versions": post.get("versions", "approved"),
                "ratios": [post.get(n, "").strip() or 0 for n in ("train", "validation", "test")],
                "tags": parse_list(post.get("tags", "")),
                "sources": [s for s in post.getlist("sources") if s],
                "since": post.get("since", "").strip() or None,
                "until": post.get("until", "").strip() or None,
                "exclude": parse_lines(post.get("exclude", "")),
                "origins": post.getlist("origins"),
                "min_agreement": post.get("min_agreement", "").strip() or None,
                "consistent_only": bool(post.get("consistent_only")),
                "min_margin": post.get("min_margin", "").strip() or 0,
                "conversational": post.get("conversational", "1") == "1",
                "margins": bool(post.get("margins")),
                "probe_kinds": post.getlist("probe_kinds"),
                "probe_passed_only": bool(post.get("probe_passed_only")),
                "license": post.get("license", "").strip(),
            }
        )

    def to_options(self) -> ExportOptions:
        data = dict(self.validated_data)
        for name in ("since", "until"):
            data[name] = data[name].isoformat() if data.get(name) else ""
        return ExportOptions.from_dict(data)


class ExportFileSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField()
    rows = serializers.IntegerField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    url = serializers.CharField(help_text="Where to download it (streamed).")


class ExportSerializer(serializers.ModelSerializer[Export]):
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
