from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.importers import FORMATS
from annotation.models import (
    Criterion,
    CriterionComment,
    Membership,
    Project,
    Prompt,
    Response,
    Role,
    Rubric,
    RubricVersion,
)
from annotation.rubric_edits import MAX_CRITERIA, MAX_TAGS


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "created_at", "role"]

    def get_role(self, obj: Project) -> str | None:
        return getattr(obj, "user_role", None)


class ProjectCountsSerializer(serializers.Serializer):
    prompts = serializers.IntegerField()
    responses = serializers.IntegerField()
    rubrics = serializers.IntegerField()
    criteria = serializers.IntegerField()
    preference_labels = serializers.IntegerField()
    members = serializers.IntegerField()


class ProjectDetailSerializer(ProjectSerializer):
    counts = ProjectCountsSerializer(read_only=True)

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "guidelines", "counts"]


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=80, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)


class PromptSerializer(serializers.ModelSerializer):
    messages = MessageSerializer(many=True)

    class Meta:
        model = Prompt
        fields = ["id", "external_id", "messages", "reference_answer", "metadata", "created_at"]


class ResponseSerializer(serializers.ModelSerializer):
    prompt = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Response
        fields = ["id", "prompt", "source", "content", "content_hash", "metadata", "created_at"]


class CriterionSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Criterion
        fields = [
            "key",
            "position",
            "text",
            "points",
            "category",
            "kind",
            "tags",
            "provenance",
            "provenance_model",
        ]


class RubricSerializer(serializers.ModelSerializer):
    prompt = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    version = serializers.IntegerField(source="current_version.number", allow_null=True)
    approved_version = serializers.IntegerField(
        source="approved_version.number", allow_null=True, default=None
    )
    criteria = serializers.SerializerMethodField()

    class Meta:
        model = Rubric
        fields = [
            "id",
            "prompt",
            "title",
            "status",
            "version",
            "approved_version",
            "criteria",
            "updated_at",
        ]

    @extend_schema_field(CriterionSerializer(many=True))
    def get_criteria(self, obj: Rubric) -> list[dict]:  # type: ignore[type-arg]
        current = getattr(obj, "current_criteria", None)
        if current is None:
            current = (
                obj.current_version.criteria.all() if obj.current_version_id else []  # type: ignore[union-attr]
            )
        return CriterionSerializer(current, many=True).data  # type: ignore[return-value]


class MembershipSerializer(serializers.ModelSerializer):
    """A member; ``email`` only where the context says ``show_email`` (to owners)."""

    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(
        source="user.email",
        read_only=True,
        required=False,
        help_text="Present for the project's owners only.",
    )

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "created_at"]

    def to_representation(self, instance: Membership) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not self.context.get("show_email"):
            data.pop("email", None)
        return data


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField(
        max_length=150, help_text="The exact username of an existing user (not an e-mail)."
    )
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=FORMATS, required=False, allow_blank=True)
    skip_invalid = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Import the valid records and skip the bad ones (listed in `errors`) "
        "instead of importing nothing when any record is bad.",
    )


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class ImportReportSerializer(serializers.Serializer):
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
    errors = ImportErrorSerializer(many=True, help_text="The first 50 bad records.")


class ImportJobSerializer(serializers.Serializer):
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

    def get_url(self, job: Any) -> str:
        return reverse("api-import-job", args=[job.project.slug, job.pk])

    @extend_schema_field(ImportReportSerializer(allow_null=True))
    def get_report(self, job: Any) -> dict[str, Any] | None:
        return ImportReportSerializer(job.report).data if job.status == "done" else None


class RubricVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    parent = serializers.IntegerField(source="parent.number", allow_null=True, default=None)

    class Meta:
        model = RubricVersion
        fields = ["number", "parent", "author", "author_model", "note", "created_at"]


class CriterionInputSerializer(serializers.Serializer):
    key = serializers.UUIDField(required=False, allow_null=True)
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    points = serializers.FloatField()
    category = serializers.ChoiceField(
        choices=Criterion.Category.choices, default="", allow_blank=True
    )
    kind = serializers.ChoiceField(choices=Criterion.Kind.choices, default=Criterion.Kind.PRINCIPLE)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=200), default=list, max_length=MAX_TAGS
    )


class RubricVersionCreateSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(
        allow_null=True, help_text="The version number the edit started from (409 if stale)."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="")
    criteria = CriterionInputSerializer(many=True, max_length=MAX_CRITERIA)


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    base_version = serializers.IntegerField(allow_null=True)
    current_version = serializers.IntegerField()


class RubricWorkflowSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["submit", "approve", "request_changes", "archive"])
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class RubricVersionDetailSerializer(RubricVersionSerializer):
    criteria = CriterionSerializer(many=True, source="criteria_list")

    class Meta(RubricVersionSerializer.Meta):
        fields = [*RubricVersionSerializer.Meta.fields, "criteria"]


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    resolved_by = serializers.CharField(
        source="resolved_by.username", allow_null=True, default=None
    )

    class Meta:
        model = CriterionComment
        fields = [
            "id",
            "criterion_key",
            "version_number",
            "author",
            "text",
            "created_at",
            "resolved_at",
            "resolved_by",
        ]


class CommentCreateSerializer(serializers.Serializer):
    criterion_key = serializers.UUIDField(
        required=False, allow_null=True, help_text="Empty for a comment on the whole rubric."
    )
    text = serializers.CharField()


class CommentResolveSerializer(serializers.Serializer):
    resolved = serializers.BooleanField(default=True, help_text="false reopens the comment.")


class RubricVersionSummarySerializer(RubricVersionSerializer):
    criteria_count = serializers.IntegerField()

    class Meta(RubricVersionSerializer.Meta):
        fields = [*RubricVersionSerializer.Meta.fields, "criteria_count"]


class RubricDetailSerializer(RubricSerializer):
    versions = RubricVersionSummarySerializer(many=True, source="version_list")

    class Meta(RubricSerializer.Meta):
        fields = [*RubricSerializer.Meta.fields, "versions"]


class RubricCreateSerializer(serializers.Serializer):
    prompt = serializers.IntegerField(
        required=False, allow_null=True, help_text="Empty for a project-wide rubric."
    )
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    criteria = CriterionInputSerializer(
        many=True, required=False, default=list, max_length=MAX_CRITERIA
    )
