"""API shapes of projects and memberships."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.projects.models import Membership, Project, Role


class ProjectSerializer(serializers.ModelSerializer[Project]):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["slug", "name", "description", "created_at", "role"]

    def get_role(self, obj: Project) -> str | None:
        """The requesting user's role, where the view knows it (``context["role"]``)."""
        role = self.context.get("role")
        return str(role) if role else None


class ProjectCountsSerializer(serializers.Serializer[dict[str, int]]):
    prompts = serializers.IntegerField()
    responses = serializers.IntegerField()
    rubrics = serializers.IntegerField()
    criteria = serializers.IntegerField()
    preference_labels = serializers.IntegerField()
    members = serializers.IntegerField()


class ProjectDetailSerializer(ProjectSerializer):
    counts = serializers.SerializerMethodField()

    class Meta(ProjectSerializer.Meta):
        fields = [*ProjectSerializer.Meta.fields, "guidelines", "counts"]

    @extend_schema_field(ProjectCountsSerializer)
    def get_counts(self, obj: Project) -> dict[str, int]:
        return ProjectCountsSerializer(self.context["counts"]).data


class ProjectCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=80, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class MembershipSerializer(serializers.ModelSerializer[Membership]):
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


class MembershipCreateSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(
        max_length=150, help_text="The exact username of an existing user (not an e-mail)."
    )
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices)
