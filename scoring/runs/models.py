"""Scoring runs: responses graded against rubrics (or compared in pairs) by a judge.

A run is cut into chunks of units; Celery tasks claim chunks with status-guarded updates.
A judgment is keyed by a hash of everything that decides its outcome (response text,
criterion text, judge model and parameters, template version, sample index), unique, so a
redelivered chunk never duplicates one and a re-run reuses every judgment whose inputs did
not change. A failed judgment keeps its error and is never read as "not met".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.projects.models import Project
from annotation.prompts.models import Response
from scoring.judges.models import BilledUsage, JudgeEndpoint

# A run judged through an OpenAI-compatible endpoint's logprobs records the local template
# it sends (the local judge's prompts) under this prefix: the prompts are the local
# judge's, the worker path is the gateway's.
LOGPROBS_VERSION_PREFIX = "logprobs+"


class RunQuerySet(models.QuerySet["Run"]):
    def without_probes(self) -> RunQuerySet:
        """Runs over the project's own responses: a judge probe's run (which judged
        perturbed copies) stays out of analytics, exports and judge pairs."""
        return self.filter(probe__isnull=True)


class Run(BilledUsage):
    class Mode(models.TextChoices):
        PER_CRITERION = "per_criterion", "Per criterion"
        GROUPED = "grouped", "Grouped (one call per response)"
        HOLISTIC = "holistic", "Holistic (1–10 given the rubric)"
        PAIRWISE = "pairwise", "Pairwise (both orders)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Versions(models.TextChoices):
        APPROVED = "approved", "Approved versions (skip rubrics never approved)"
        LATEST = "latest", "Latest versions"

    class PairPlan(models.TextChoices):
        ALL = "all", "All pairs per prompt"
        BASELINE = "baseline", "Each source against a baseline source"
        SAMPLED = "sampled", "k sampled pairs per prompt"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    endpoint = models.ForeignKey(
        JudgeEndpoint, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    versions = models.CharField(max_length=16, choices=Versions.choices, default=Versions.LATEST)
    sources = models.JSONField(default=list, blank=True, help_text="Empty: every source.")
    prompt_ids = models.JSONField(default=list, blank=True, help_text="Empty: every prompt.")
    samples = models.PositiveSmallIntegerField(default=1)
    temperature = models.FloatField(null=True, blank=True)
    pair_plan = models.CharField(max_length=16, choices=PairPlan.choices, blank=True)
    baseline_source = models.CharField(max_length=200, blank=True)
    pairs_per_prompt = models.PositiveSmallIntegerField(default=3)
    budget = models.FloatField(null=True, blank=True, help_text="Pause when the cost reaches it.")
    model = models.CharField(max_length=200, blank=True)
    template_version = models.CharField(max_length=50, blank=True)
    judge_hash = models.CharField(max_length=64, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    reused = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True, help_text="Why the run paused or failed.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while the run is paused."
    )
    paused_seconds = models.FloatField(default=0.0, help_text="Time spent paused before now.")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def is_local(self) -> bool:
        """Judged by a local model (its prompts are the local templates), whatever the
        endpoint has become since."""
        return self.template_version.startswith("local-")

    @property
    def reads_logprobs(self) -> bool:
        """Judged by P(yes) read from an OpenAI-compatible endpoint's logprobs (the local
        templates' prompts, sent through the gateway), whatever the endpoint has become."""
        return self.template_version.startswith(LOGPROBS_VERSION_PREFIX)

    @property
    def reads_probabilities(self) -> bool:
        """Its judgments carry a probability (P(yes), or P(A) for a pair): a local or a
        logprob judge."""
        return self.is_local or self.reads_logprobs


class RunChunk(models.Model):
    """Tens to hundreds of units, claimed by one task at a time."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    units = models.JSONField(default=list)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Claims so far; the holder's token."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    retry = models.BooleanField(default=False, help_text="Failed units of earlier chunks, again.")

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="chunk_index")]

    def __str__(self) -> str:
        return f"chunk {self.index} of run {self.run_id} ({self.status})"


class Judgment(models.Model):
    """One verdict: a response on one criterion (per-criterion and grouped modes), a
    holistic rating of a response, or one order of a pairwise comparison."""

    key = models.CharField(max_length=64, unique=True)
    mode = models.CharField(max_length=16, choices=Run.Mode.choices)
    response = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="judgments")
    other = models.ForeignKey(
        Response,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Pairwise: the response shown second (as B).",
    )
    criterion_key = models.UUIDField(null=True, blank=True)
    sample = models.PositiveSmallIntegerField(default=0)
    model = models.CharField(max_length=200)
    template_version = models.CharField(max_length=50)
    met = models.BooleanField(null=True)
    probability = models.FloatField(
        null=True,
        blank=True,
        help_text="Local judges: P(yes) for a criterion; pairwise, P(the response shown as A).",
    )
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    winner = models.CharField(max_length=4, blank=True, help_text="Pairwise: A, B or tie.")
    detail = models.JSONField(default=dict, blank=True)
    explanation = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="Non-empty: the judgment failed; no verdict.")
    created_by_run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    calls = models.PositiveSmallIntegerField(default=0, help_text="Billed answers it took.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0.0)
    latency = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["response", "criterion_key"])]

    def __str__(self) -> str:
        return f"judgment {self.key[:10]}"


class RunJudgment(models.Model):
    """A judgment as part of a run; ``reused`` when an earlier run paid for it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="run_judgments")
    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="+")
    reused = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "judgment"], name="run_judgment_once")
        ]

    def __str__(self) -> str:
        return f"judgment {self.judgment_id} in run {self.run_id}"
