"""Prompts, their responses and preference labels, and import jobs.

An import job's upload is stored under ``MEDIA_ROOT/imports/`` until the job has run (the web
process and the workers share that folder, as they do for exports); the report stays on the
job."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.projects.models import Project


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_search_text(messages: list[dict[str, Any]]) -> str:
    """What the prompt list's search reads: the messages' contents, one per line."""
    return "\n".join(str(m.get("content", "")) for m in messages)


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
        # A project's prompts in id order from the index alone: the prompt table's pages
        # (a page of ids, then those rows) and the merges with responses in prompt order.
        indexes = [models.Index(fields=["project", "id"], name="prompt_project_id")]

    def __str__(self) -> str:
        return self.external_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.search_text = prompt_search_text(self.messages)
        super().save(*args, **kwargs)

    @property
    def last_user_message(self) -> str:
        return last_user_message(self.messages)


def last_user_message(messages: list[dict[str, Any]]) -> str:
    """The content of the conversation's last user message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


PROBE_SOURCE_PREFIX = "probe:"  # perturbed copies a judge probe made of a response


class ResponseQuerySet(models.QuerySet["Response"]):
    def without_probes(self) -> ResponseQuerySet:
        """The responses people and models wrote: a judge probe's perturbed copies
        (source ``probe:<kind>``) are left out of runs, exports and pages unless chosen."""
        return self.exclude(source__startswith=PROBE_SOURCE_PREFIX)


class Response(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="responses")
    source = models.CharField(max_length=200, help_text='Model name, or "human".')
    content = models.TextField()
    content_hash = models.CharField(max_length=64, editable=False)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ResponseQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["prompt", "source", "content_hash"], name="response_unique_content"
            )
        ]
        indexes = [
            # By source, then prompt: the distinct sources (one probe each) and whether a
            # project has responses from one (merged with its prompts in prompt order).
            models.Index(fields=["source", "prompt"], name="response_source_prompt"),
            # The responses people and models wrote, by prompt: counted per prompt and per
            # project from the index alone.
            models.Index(
                fields=["prompt"],
                condition=~Q(source__startswith=PROBE_SOURCE_PREFIX),
                name="response_prompt_not_probe",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.content[:40]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.content_hash = content_hash(self.content)
        super().save(*args, **kwargs)


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


class ImportJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Reading and checking"
        WRITING = "writing", "Writing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_name = models.CharField(max_length=255, help_text="The name the file was uploaded as.")
    stored_path = models.CharField(
        max_length=500, blank=True, help_text="Relative to MEDIA_ROOT; blank once removed."
    )
    size = models.PositiveBigIntegerField(help_text="Bytes uploaded.")
    format = models.CharField(max_length=32, blank=True, help_text="Blank: detected.")
    skip_invalid = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    lines_read = models.PositiveBigIntegerField(
        default=0, help_text="Lines (or array elements) read so far; records written once done."
    )
    report = models.JSONField(
        default=dict, blank=True, help_text="ImportReport.as_dict() once the job is done."
    )
    error = models.TextField(blank=True, help_text="Why a failed job imported nothing.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Queued: when it was last sent to the workers; running: the worker's last sign "
        "of life (the recovery sweep fails a job whose worker stopped).",
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.file_name} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def wrote_nothing(self) -> bool:
        """Done, but refused as a whole: an all-or-nothing import of a file with bad records."""
        return self.status == self.Status.DONE and self.report.get("committed") is False
