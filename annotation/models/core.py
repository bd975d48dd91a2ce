"""Projects, people, prompts, responses, preference labels and rubrics."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


# Higher rank includes the rights of every lower one.
ROLE_RANK = {Role.VIEWER: 0, Role.REVIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}


class Project(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Guidance for rubric authors and judges.")
    allow_self_approval = models.BooleanField(
        default=False, help_text="Whether the author of a rubric version may approve it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Prompt(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200)
    messages = models.JSONField(help_text='Chat messages: [{"role": ..., "content": ...}]')
    reference_answer = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    search_text = models.TextField(
        blank=True, editable=False, help_text="The messages' contents as plain text, for search."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="prompt_unique_external_id"
            )
        ]

    def __str__(self) -> str:
        return self.external_id

    def save(self, *args: object, **kwargs: object) -> None:
        self.search_text = "\n".join(str(m.get("content", "")) for m in self.messages)
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""


class Response(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    source = models.CharField(max_length=200, help_text='Model name, or "human".')
    content = models.TextField()
    content_hash = models.CharField(max_length=64, editable=False)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "source", "content_hash"], name="response_unique_content"
            )
        ]
        indexes = [models.Index(fields=["source"])]

    def __str__(self) -> str:
        return f"{self.source}: {self.content[:40]}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.content_hash = content_hash(self.content)
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class PreferenceLabel(models.Model):
    class Source(models.TextChoices):
        DATASET = "dataset", "Dataset"
        EXPERT = "expert", "Expert"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="preference_labels")
    chosen = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    rejected = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.DATASET)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "chosen", "rejected", "source"], name="preference_unique"
            ),
            models.CheckConstraint(
                condition=~Q(chosen=models.F("rejected")), name="preference_distinct"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt}: {self.chosen_id} over {self.rejected_id} ({self.source})"


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


class AuditEvent(models.Model):
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target}"


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
