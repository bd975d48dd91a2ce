"""Judge endpoints, the LLM providers they are made on, and stored sentence embeddings.

Secrets never reach these tables: an endpoint's key is its provider's (``LLMProvider``, set
up by the site admin), which names the environment variable that holds it. A provider binds
the name of that variable to one base URL; project owners create endpoints on a provider and
never see or choose the key. Embeddings are stored one per (model, text), so a text is
embedded once per model and the web process compares criteria without loading a model."""

from __future__ import annotations

import hashlib

import numpy as np
from django.core.validators import RegexValidator
from django.db import models

from annotation.projects.models import Project

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
    LiteLLM…) that writes verdicts, the same kind of endpoint read for P(yes) from the
    log-probabilities of a one-token answer (``openai_logprobs``: the local judge's prompts
    and rule, served by a vLLM fleet or a hosted API), or a local causal LM on disk that
    workers on the ``gpu`` queue load with PyTorch and read P(yes) from (no generation)."""

    class Backend(models.TextChoices):
        OPENAI = "openai", "OpenAI-compatible"
        OPENAI_LOGPROBS = "openai_logprobs", "OpenAI-compatible, P(yes) from logprobs"
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
    threshold = models.FloatField(
        default=0.5, help_text="Local and logprob judges: met when P(yes) ≥ this."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="endpoint_name_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"

    @property
    def reads_probabilities(self) -> bool:
        """It grades by reading P(yes) (or P(A)) at the answer position, locally or from a
        server's logprobs, and writes no text (no co-authoring, no rewrites)."""
        return self.backend in (self.Backend.LOCAL, self.Backend.OPENAI_LOGPROBS)


def text_hash(text: str) -> str:
    """What a vector is filed under: the sha256 of the exact text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Embedding(models.Model):
    model = models.CharField(
        max_length=200, help_text="The model's key (scoring.judges.embeddings.model_key)."
    )
    text_hash = models.CharField(max_length=64)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian, L2-normalised.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "text_hash"], name="embedding_unique_text")
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.text_hash[:12]}"

    def array(self) -> np.ndarray:
        values = np.frombuffer(bytes(self.vector), dtype="<f4")
        if values.shape != (self.dim,):
            raise ValueError(
                f"embedding {self.pk}: {values.size} values stored, {self.dim} expected"
            )
        return values.astype(np.float32)

    @staticmethod
    def pack(vector: np.ndarray) -> bytes:
        return np.asarray(vector, dtype="<f4").tobytes()


class EmbeddingModelStatus(models.Model):
    """What a worker found the last time it tried to load an embedding model (by its key):
    ``error`` empty when it loaded. The near-duplicate panel reads it to say "not available"
    instead of waiting for vectors no worker can make."""

    model = models.CharField(max_length=200, unique=True)
    error = models.TextField(blank=True)
    checked_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.model}: {self.error or 'available'}"


class LLMProvider(models.Model):
    """A base URL and the NAME of the variable holding its key (never the key). Site admins
    (superusers) manage them in the Django admin."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.CharField(
        max_length=500, help_text="e.g. https://api.openai.com/v1; requests go here and only here."
    )
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[ENV_NAME],
        help_text="The NAME of the environment variable holding the key (never the key); "
        "empty for a server that needs none.",
    )
    enabled = models.BooleanField(
        default=True, help_text="Off: its endpoints send nothing (runs and jobs fail with why)."
    )
    projects = models.ManyToManyField(
        Project,
        blank=True,
        related_name="+",
        help_text="The projects whose owners may use it; none selected: every project.",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "LLM provider"

    def __str__(self) -> str:
        return self.name
