"""Import jobs: an uploaded file imported by a worker, with its progress and its report.

The upload is stored under ``MEDIA_ROOT/imports/`` until the job has run (the web process
and the workers share that folder, as they do for exports); the report stays on the job.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.models.core import Project


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
