"""Judge endpoints, LLM co-authoring jobs and their proposals.

Imports ``annotation``; ``annotation`` never imports this app. Secrets never reach these
tables: an endpoint's key is its provider's (``providers.LLMProvider``, set up by the site
admin), which names the environment variable that holds it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from annotation.models import Project, Prompt, Rubric

ENV_NAME = RegexValidator(
    r"^[A-Z_][A-Z0-9_]{0,99}$",
    "The name of an environment variable: capital letters, digits and underscores.",
)


class BilledUsage(models.Model):
    """What the billed answers behind a job, a proposal or a run cost."""

    calls = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.FloatField(default=0.0)

    class Meta:
        abstract = True


class JudgeEndpoint(models.Model):
    """A judge for a project: an OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama,
    LiteLLM…), or a local causal LM on disk that workers on the ``gpu`` queue load with
    PyTorch and read P(yes) from (no generation)."""

    class Backend(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible"
        LOCAL = "local", "Local model (PyTorch)"

    class Dtype(models.TextChoices):
        AUTO = "auto", "Automatic (bf16 on CUDA, fp32 on CPU)"
        BFLOAT16 = "bfloat16", "bfloat16"
        FLOAT16 = "float16", "float16"
        FLOAT32 = "float32", "float32"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="judge_endpoints")
    name = models.CharField(max_length=100)
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.OPENAI)
    provider = models.ForeignKey(
        "scoring.LLMProvider",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="endpoints",
        help_text="The site's provider whose URL and key it uses; none: no key is sent.",
    )
    base_url = models.CharField(
        max_length=500,
        blank=True,
        help_text="e.g. http://127.0.0.1:8001/v1; on a provider, always the provider's.",
    )
    model = models.CharField(max_length=200)
    temperature = models.FloatField(default=0.0)
    max_tokens = models.PositiveIntegerField(default=2048)
    timeout = models.FloatField(default=60.0, help_text="Seconds per HTTP attempt.")
    max_concurrency = models.PositiveIntegerField(default=8)
    rpm = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    tpm = models.PositiveIntegerField(null=True, blank=True, help_text="Tokens per minute.")
    price_input_per_m = models.FloatField(default=0.0, help_text="Price per 1M input tokens.")
    price_output_per_m = models.FloatField(default=0.0, help_text="Price per 1M output tokens.")
    # Local backend only.
    model_path = models.CharField(
        max_length=500,
        blank=True,
        help_text="Local: the directory of a Hugging Face causal LM on the GPU workers' disk.",
    )
    dtype = models.CharField(max_length=16, choices=Dtype.choices, default=Dtype.AUTO)
    device = models.CharField(
        max_length=32, default="auto", help_text="Local: auto, cpu, cuda or cuda:N."
    )
    batch_tokens = models.PositiveIntegerField(
        default=16384, help_text="Local: tokens (rows × padded length) per forward pass."
    )
    threshold = models.FloatField(default=0.5, help_text="Local: met when P(yes) ≥ this.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="endpoint_name_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"


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
