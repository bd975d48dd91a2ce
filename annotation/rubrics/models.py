"""Rubrics, their immutable versions and criteria, review decisions, per-person drafts
and criterion comments."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.projects.models import Project
from annotation.prompts.models import Prompt


class Rubric(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        ARCHIVED = "archived", "Archived"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rubrics")
    prompt = models.ForeignKey(
        Prompt,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rubrics",
        help_text="Empty for a project-wide rubric that applies to every prompt.",
    )
    title = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    current_version = models.ForeignKey(
        "RubricVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_version = models.ForeignKey(
        "RubricVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt"],
                condition=Q(prompt__isnull=False),
                name="rubric_one_per_prompt",
            )
        ]

    def __str__(self) -> str:
        return self.title


class RubricVersion(models.Model):
    """An immutable snapshot of a rubric's criteria. Never updated after creation."""

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    author_model = models.CharField(
        max_length=200, blank=True, help_text="The LLM that wrote this version, if any."
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rubric", "number"]
        constraints = [
            models.UniqueConstraint(fields=["rubric", "number"], name="rubric_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.rubric} v{self.number}"


class Criterion(models.Model):
    class Category(models.TextChoices):
        NONE = "", "—"
        ESSENTIAL = "essential", "Essential"
        IMPORTANT = "important", "Important"
        OPTIONAL = "optional", "Optional"
        PITFALL = "pitfall", "Pitfall"

    class Kind(models.TextChoices):
        HARD_RULE = "hard_rule", "Hard rule"
        PRINCIPLE = "principle", "Principle"

    class Provenance(models.TextChoices):
        HUMAN = "human", "Human"
        LLM = "llm", "LLM"
        HYBRID = "hybrid", "Hybrid"

    version = models.ForeignKey(RubricVersion, on_delete=models.CASCADE, related_name="criteria")
    key = models.UUIDField(default=uuid.uuid4, help_text="Stable across versions.")
    position = models.PositiveIntegerField()
    text = models.TextField()
    points = models.FloatField(help_text="May be negative for pitfall items.")
    category = models.CharField(max_length=16, choices=Category.choices, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PRINCIPLE)
    tags = models.JSONField(default=list, blank=True)
    provenance = models.CharField(
        max_length=8, choices=Provenance.choices, default=Provenance.HUMAN
    )
    provenance_model = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="criterion_key_per_version"),
            models.UniqueConstraint(
                fields=["version", "position"], name="criterion_position_per_version"
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.points:g}] {self.text[:60]}"


class RubricReviewDecision(models.Model):
    """A reviewer's decision on one version of a rubric."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REQUEST_CHANGES = "request_changes", "Request changes"

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="decisions")
    version = models.ForeignKey(RubricVersion, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision = models.CharField(max_length=16, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.decision} on {self.version}"


class RubricDraft(models.Model):
    """One person's unsaved edits of a rubric, kept on the server so that they survive a
    reload. Saving turns the draft into a RubricVersion on ``base_number`` and deletes it.

    ``criteria`` holds plain dicts (key, text, points, category, kind, tags, provenance,
    provenance_model). ``conflicts`` holds the criteria that both this person and the
    author of version ``conflict_with`` changed, until the person chooses a side.
    """

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="drafts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    base_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version the edits started from."
    )
    criteria = models.JSONField(default=list)
    conflicts = models.JSONField(default=list, blank=True)
    conflict_with = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rubric", "user"], name="rubric_draft_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} editing {self.rubric}"


class CriterionComment(models.Model):
    """A comment on one criterion (followed by its stable key across versions), or on the
    whole rubric when ``criterion_key`` is empty. Resolvable."""

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="comments")
    criterion_key = models.UUIDField(null=True, blank=True)
    version_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="The version shown when the comment was written."
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["rubric", "criterion_key"])]

    def __str__(self) -> str:
        return f"comment on {self.rubric} {self.criterion_key or ''}".strip()
