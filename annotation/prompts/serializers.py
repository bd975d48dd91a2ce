"""API shapes of prompts, responses, imports and import jobs."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.prompts.importers.formats import FORMATS
from annotation.prompts.models import ImportJob, Prompt, Response


class MessageSerializer(serializers.Serializer[dict[str, Any]]):
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)


class PromptSerializer(serializers.ModelSerializer[Prompt]):
    messages = MessageSerializer(many=True)

    class Meta:
        model = Prompt
        fields = ["id", "external_id", "messages", "reference_answer", "metadata", "created_at"]


class ResponseSerializer(serializers.ModelSerializer[Response]):
    prompt: serializers.PrimaryKeyRelatedField[Prompt] = serializers.PrimaryKeyRelatedField(
        read_only=True
    )

    class Meta:
        model = Response
        fields = ["id", "prompt", "source", "content", "content_hash", "metadata", "created_at"]


class ImportRequestSerializer(serializers.Serializer[Any]):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_blank=True)
    skip_invalid = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Import the valid records and skip the bad ones (listed in `errors`) "
        "instead of importing nothing when any record is bad.",
    )


class ImportErrorSerializer(serializers.Serializer[dict[str, Any]]):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class ImportReportSerializer(serializers.Serializer[dict[str, Any]]):
    file = serializers.CharField()
    format = serializers.CharField()
    skip_invalid = serializers.BooleanField()
    ok = serializers.BooleanField(help_text="The file had no bad record.")
    committed = serializers.BooleanField(
        help_text="The valid records were written (false: nothing was imported)."
    )
    skipped = serializers.IntegerField(help_text="Bad records skipped (skip_invalid only).")
    unchanged = serializers.BooleanField()
    records = serializers.IntegerField()
    prompts_created = serializers.IntegerField()
    prompts_unchanged = serializers.IntegerField()
    responses_created = serializers.IntegerField()
    responses_unchanged = serializers.IntegerField()
    rubrics_created = serializers.IntegerField()
    rubrics_unchanged = serializers.IntegerField()
    criteria_created = serializers.IntegerField()
    preference_labels_created = serializers.IntegerField()
    preference_labels_unchanged = serializers.IntegerField()
    error_count = serializers.IntegerField()
    # A field named like Serializer.errors: DRF's metaclass takes declared fields off the
    # class, so ``.errors`` stays the serializer's own (the stubs cannot know that).
    errors = ImportErrorSerializer(  # type: ignore[assignment]
        many=True, help_text="The first 50 bad records."
    )


class ImportJobSerializer(serializers.Serializer[ImportJob]):
    """An import done by a worker: its progress, then its report (or why it failed)."""

    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="This resource: poll it until finished.")
    file = serializers.CharField(source="file_name")
    size = serializers.IntegerField(help_text="Bytes uploaded.")
    format = serializers.CharField(help_text="As asked; blank: detected (see the report).")
    skip_invalid = serializers.BooleanField()
    status = serializers.CharField(
        help_text="queued → parsing (reading and checking, no lock) → writing → done | failed."
    )
    lines_read = serializers.IntegerField(help_text="Lines (or array elements) read so far.")
    report = serializers.SerializerMethodField(help_text="Once done: the import's report.")
    error = serializers.CharField(help_text="Once failed: why nothing was imported.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, job: ImportJob) -> str:
        return reverse("api-import-job", args=[job.project.slug, job.pk])

    @extend_schema_field(ImportReportSerializer(allow_null=True))
    def get_report(self, job: ImportJob) -> dict[str, Any] | None:
        return ImportReportSerializer(job.report).data if job.status == "done" else None
