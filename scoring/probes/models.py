"""A judge probe: a scoring run over sampled responses and their perturbed copies, the
copies it made (each a ``Response`` with source ``probe:<kind>``, linked to its original),
the causal rewrites' usage, and the report computed once everything is judged.

Phases: the originals and the deterministic copies are judged first; with causal probes
the co-author LLM then rewrites each original against criteria chosen from its verdicts
(a met one to remove, an unmet positive one to add), and the rewrites are judged in the
same run; the report is computed when nothing is left to judge.
"""

from __future__ import annotations

from django.db import models

from annotation.projects.models import Project
from annotation.prompts.models import Response
from scoring.judges.models import BilledUsage, JudgeEndpoint
from scoring.runs.models import Run


class Probe(BilledUsage):
    """The billed usage is the causal rewrites' (the judging is the run's)."""

    class Phase(models.TextChoices):
        JUDGING = "judging", "Judging the originals and their neutral and injected copies"
        JUDGING_REWRITES = "judging_rewrites", "Judging the causal rewrites"
        DONE = "done", "Report ready"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="probes")
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="probe")
    kinds = models.JSONField(default=list, help_text="The perturbation kinds probed.")
    sample = models.PositiveIntegerField(help_text="Responses sampled.")
    seed = models.IntegerField(default=0)
    rewriter = models.ForeignKey(
        JudgeEndpoint,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The co-author LLM that writes the causal rewrites.",
    )
    rewrite_template = models.CharField(max_length=50, blank=True)
    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.JUDGING)
    note = models.TextField(blank=True, help_text="Why the probe failed, or what it skipped.")
    report = models.JSONField(default=dict, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"probe {self.pk} (run {self.run_id}, {self.phase})"


class ProbeVariant(models.Model):
    """One perturbed copy of a sampled response (``variant`` None: a causal rewrite that
    failed, with its error).

    ``passed``: the judge did what a robust judge does with it: no verdict moved (neutral,
    injection), or the targeted criterion flipped (causal); None until judged."""

    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="variants")
    original = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=20)
    # injection: {"phrasing", "position"}; causal: {"criterion", "text", "points", "direction"}
    detail = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # What the judge did with it (its first sample), stored with the report: the criterion
    # verdicts that changed of those judged on both, and (causal) whether the targeted one did.
    flips = models.PositiveIntegerField(null=True, blank=True)
    compared = models.PositiveIntegerField(null=True, blank=True)
    target_flipped = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["probe", "id"]
        indexes = [models.Index(fields=["probe", "kind"])]

    def __str__(self) -> str:
        return f"{self.kind} copy of response {self.original_id}"

    @property
    def passed(self) -> bool | None:
        return passed(self.kind, self.flips, self.target_flipped)


def passed(kind: str, flips: int | None, target_flipped: bool | None) -> bool | None:
    """Whether the judge did what a robust judge does with a copy: no verdict moved
    (neutral, injection), or the targeted criterion flipped the intended way (causal)."""
    if kind == "causal":
        return target_flipped
    return None if flips is None else flips == 0
