"""API shapes of rubrics, versions, criteria, comments and workflow steps."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.prompts.models import Prompt
from annotation.rubrics.edits import MAX_CRITERIA, MAX_TAGS
from annotation.rubrics.models import Criterion, CriterionComment, Rubric, RubricVersion


class CriterionSerializer(serializers.ModelSerializer[Criterion]):
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


class RubricSerializer(serializers.ModelSerializer[Rubric]):
    prompt: serializers.PrimaryKeyRelatedField[Prompt] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
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
    def get_criteria(self, obj: Rubric) -> list[dict[str, Any]]:
        current = getattr(obj, "current_criteria", None)
        if current is None:
            version = obj.current_version  # no query when the rubric has none
            current = version.criteria.all() if version is not None else []
        # many=True makes a ListSerializer, whose data is a list; the stubs do not know it.
        return CriterionSerializer(current, many=True).data  # type: ignore[return-value]


class RubricVersionSerializer(serializers.ModelSerializer[RubricVersion]):
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    # A field named like Field.parent: DRF's metaclass takes declared fields off the class,
    # so ``.parent`` stays the serializer's own (the stubs cannot know that).
    parent = serializers.IntegerField(  # type: ignore[assignment]
        source="parent.number", allow_null=True, default=None
    )

    class Meta:
        model = RubricVersion
        fields = ["number", "parent", "author", "author_model", "note", "created_at"]


class CriterionInputSerializer(serializers.Serializer[Any]):
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


class RubricVersionCreateSerializer(serializers.Serializer[Any]):
    base_version = serializers.IntegerField(
        allow_null=True, help_text="The version number the edit started from (409 if stale)."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="")
    # ``max_length`` goes to the ListSerializer that ``many=True`` makes (not in the stubs).
    criteria = CriterionInputSerializer(many=True, max_length=MAX_CRITERIA)  # type: ignore[call-arg]


class ConflictSerializer(serializers.Serializer[dict[str, Any]]):
    detail = serializers.CharField()
    base_version = serializers.IntegerField(allow_null=True)
    current_version = serializers.IntegerField()


class RubricWorkflowSerializer(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=["submit", "approve", "request_changes", "archive"])
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class RubricVersionDetailSerializer(RubricVersionSerializer):
    criteria = CriterionSerializer(many=True, source="criteria_list")

    class Meta(RubricVersionSerializer.Meta):
        fields = [*RubricVersionSerializer.Meta.fields, "criteria"]


class CommentSerializer(serializers.ModelSerializer[CriterionComment]):
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


class CommentCreateSerializer(serializers.Serializer[Any]):
    criterion_key = serializers.UUIDField(
        required=False, allow_null=True, help_text="Empty for a comment on the whole rubric."
    )
    text = serializers.CharField()


class CommentResolveSerializer(serializers.Serializer[Any]):
    resolved = serializers.BooleanField(default=True, help_text="false reopens the comment.")


class RubricVersionSummarySerializer(RubricVersionSerializer):
    criteria_count = serializers.IntegerField()

    class Meta(RubricVersionSerializer.Meta):
        fields = [*RubricVersionSerializer.Meta.fields, "criteria_count"]


class RubricDetailSerializer(RubricSerializer):
    versions = RubricVersionSummarySerializer(many=True, source="version_list")

    class Meta(RubricSerializer.Meta):
        fields = [*RubricSerializer.Meta.fields, "versions"]


class RubricCreateSerializer(serializers.Serializer[Any]):
    prompt = serializers.IntegerField(
        required=False, allow_null=True, help_text="Empty for a project-wide rubric."
    )
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    criteria = CriterionInputSerializer(  # type: ignore[call-arg]  # max_length: as above
        many=True, required=False, default=list, max_length=MAX_CRITERIA
    )
