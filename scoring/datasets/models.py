"""Dataset exports: immutable snapshots. An export's files live under
``MEDIA_ROOT/exports/<id>/``; each file's sha256 is recorded when it is written and the
files are never changed afterwards."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotation.projects.models import Project


class Export(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=32)
    format = models.CharField(max_length=16)
    options = models.JSONField(default=dict, help_text="ExportOptions.as_dict().")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    files = models.JSONField(
        default=list, blank=True, help_text='[{"name", "sha256", "bytes", "rows"}] once done.'
    )
    error = models.TextField(blank=True)
    studio_version = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} export {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
