"""LLM co-authoring: a project's settings, jobs (one action over one or many prompts) and the
proposals they make, each decided per criterion by an editor."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.projects.models import Project
from annotation.prompts.models import Prompt
from annotation.rubrics.models import Rubric
from scoring.judges.models import BilledUsage, JudgeEndpoint


class CoauthorSettings(models.Model):
    """How a project's rubrics are co-authored with LLMs."""

    class Style(models.TextChoices):
        RAR = "rar", "RaR: categories and weights"
        HEALTHBENCH = "healthbench", "HealthBench: points and tags"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="coauthoring")
    endpoint = models.ForeignKey(
        JudgeEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    style = models.CharField(max_length=16, choices=Style.choices, default=Style.HEALTHBENCH)
    contrastive_tries = models.PositiveSmallIntegerField(
        default=3, help_text="Samples of a contrastive rubric before giving up on the label."
    )
    refine_rounds = models.PositiveSmallIntegerField(default=2)

    def __str__(self) -> str:
        return f"co-authoring for {self.project}"


class CoauthorJob(BilledUsage):
    """One co-authoring action, or a batch of them; its result is a set of proposals."""

    class Kind(models.TextChoices):
        DRAFT = "draft", "Draft a rubric"
        CONTRASTIVE = "contrastive", "Contrastive rubric from a preference pair"
        REFINE = "refine", "Refine by differentiation"
        CRITIQUE = "critique", "Critique"
        NUGGETS = "nuggets", "Nuggets from a reference"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="coauthor_jobs")
    endpoint = models.ForeignKey(
        JudgeEndpoint, null=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    batch = models.BooleanField(default=False)
    prompt = models.ForeignKey(
        Prompt,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="coauthor_jobs",
        help_text="The prompt of a single-prompt job (empty for a batch).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True)
    template_version = models.CharField(max_length=50, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Renewed by the worker running the job (its lease)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)


class Proposal(BilledUsage):
    """An LLM's proposed criteria for one rubric: a criterion-level diff against the version
    it was made on, accepted or rejected criterion by criterion. An item that failed is a
    proposal with ``status=failed`` and its error, so a batch accounts for every prompt."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        ACCEPTED = "accepted", "Accepted"
        PARTIAL = "partial", "Partly accepted"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(CoauthorJob, on_delete=models.CASCADE, related_name="proposals")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="proposals")
    prompt = models.ForeignKey(
        Prompt, null=True, blank=True, on_delete=models.CASCADE, related_name="proposals"
    )
    rubric = models.ForeignKey(
        Rubric, null=True, blank=True, on_delete=models.CASCADE, related_name="proposals"
    )
    kind = models.CharField(max_length=16, choices=CoauthorJob.Kind.choices)
    round = models.PositiveSmallIntegerField(default=1)
    base_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="The rubric version the proposal was made against."
    )
    base_criteria = models.JSONField(default=list, blank=True)
    criteria = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=200, blank=True)
    template_version = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    result_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A redelivered task never makes a second proposal for the same item.
            models.UniqueConstraint(
                fields=["job", "prompt", "round"], name="proposal_once_per_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} proposal {self.pk} ({self.status})"
