"""A run's analytics, computed by a worker and stored (pages never recompute them)."""

from __future__ import annotations

from django.db import models

from scoring.runs.models import Run


class RunInsights(models.Model):
    """The figures of ``scoring.insights.compute.run_figures`` for one run, as JSON."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="insights")
    figures = models.JSONField(default=dict)
    error = models.TextField(blank=True, help_text="Why the figures could not be computed.")
    seconds = models.FloatField(default=0.0, help_text="Time the worker took.")
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"analytics of run {self.run_id}"
