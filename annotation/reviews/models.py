"""Expert review of pairwise judgments: queues of response pairs, slots that reviewers claim
(each item reviewed by ``overlap`` different people), their committed decisions, and the
final label of each item (the reviewers' consensus, or an adjudicator's call).

A queue is made from a pairwise run (scoring writes the judge's verdict into each item as a
snapshot: this app never imports scoring) or from imported preference pairs (the dataset's
label stands where the judge would). The snapshot is only ever sent to a reviewer after they
commit their own decision on the item.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.projects.models import Project
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics.models import RubricVersion

WINNERS = (("a", "Response a"), ("b", "Response b"), ("tie", "Tie"))


class ReviewQueue(models.Model):
    class Origin(models.TextChoices):
        RUN = "run", "A pairwise run"
        LABELS = "labels", "Imported preference pairs"

    class Plan(models.TextChoices):
        ALL = "all", "All pairs"
        STRATIFIED = "stratified", "Stratified by the judge's verdict"
        INCONSISTENT = "inconsistent", "Only position-inconsistent judgments"
        LOW_CONFIDENCE = "low_confidence", "Only low-confidence judgments"
        RANDOM = "random", "k at random"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_queues")
    name = models.CharField(max_length=200)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.ALL)
    sample_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="k for the random and stratified plans."
    )
    overlap = models.PositiveSmallIntegerField(default=2, help_text="Reviewers per item.")
    seed = models.BigIntegerField(help_text="Seeds the sample and each reviewer's order.")
    lock_minutes = models.PositiveSmallIntegerField(
        default=15, help_text="How long a claimed item stays with its reviewer."
    )
    show_sources = models.BooleanField(
        default=False, help_text="Show which model wrote each response (hidden by default)."
    )
    source_run = models.PositiveIntegerField(
        null=True, blank=True, help_text="The pairwise run the queue was made from (its id)."
    )
    judge_name = models.CharField(max_length=200, blank=True)
    template_version = models.CharField(max_length=50, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ReviewItem(models.Model):
    """One pair under review. ``judge`` is the reference verdict, frozen when the queue was
    made: ``{"winner": "a" | "b" | "tie", "consistent": bool, "probability": float | None,
    "criteria": {criterion key: "a" | "b" | "tie"}, "orders": [{"order", "winner",
    "explanation"}], "endpoint", "template_version"}`` (for preference pairs just the
    dataset's winner)."""

    class FinalSource(models.TextChoices):
        CONSENSUS = "consensus", "Reviewers agreed"
        ADJUDICATED = "adjudicated", "Adjudicated"

    queue = models.ForeignKey(ReviewQueue, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="+")
    response_a = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.CASCADE, related_name="+")
    rubric_version = models.ForeignKey(
        RubricVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    judge = models.JSONField(default=dict, blank=True)
    final = models.CharField(max_length=4, choices=WINNERS, blank=True)
    final_source = models.CharField(max_length=16, choices=FinalSource.choices, blank=True)
    final_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    final_at = models.DateTimeField(null=True, blank=True)
    label = models.ForeignKey(
        PreferenceLabel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The expert preference label the final verdict made (none for a tie).",
    )

    class Meta:
        ordering = ["queue", "position"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "position"], name="review_item_position"),
            models.UniqueConstraint(
                fields=["queue", "response_a", "response_b"], name="review_item_pair"
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.position} of {self.queue}"


class ReviewSlot(models.Model):
    """One of an item's ``overlap`` reviews. Claimed by a reviewer for ``lock_minutes`` (a
    slot whose lock ran out goes back to the pool); ``swapped``: this reviewer sees response
    b on the left, as A."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HELD = "held", "Held by a reviewer"
        DONE = "done", "Done"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="slots")
    index = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locked_until = models.DateTimeField(null=True, blank=True)
    swapped = models.BooleanField(default=False)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item", "index"]
        constraints = [
            models.UniqueConstraint(fields=["item", "index"], name="review_slot_index"),
            # A reviewer never holds two slots of one item.
            models.UniqueConstraint(
                fields=["item", "reviewer"],
                condition=Q(reviewer__isnull=False),
                name="review_slot_one_per_reviewer",
            ),
        ]
        indexes = [models.Index(fields=["status", "locked_until"])]

    def __str__(self) -> str:
        return f"slot {self.index} of {self.item}"


class PairwiseReview(models.Model):
    """A reviewer's committed decision. ``winner`` is in terms of the item's response a and
    b, whatever side each was shown on (``shown_swapped``); ``criteria`` maps criterion keys
    the reviewer marked to "a", "b" or "tie"."""

    slot = models.OneToOneField(ReviewSlot, on_delete=models.CASCADE, related_name="review")
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pairwise_reviews"
    )
    winner = models.CharField(max_length=4, choices=WINNERS)
    shown_swapped = models.BooleanField(default=False)
    criteria = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 to 5.")
    seconds = models.FloatField(default=0.0, help_text="Time from showing the item to commit.")
    saw_judge_before_commit = models.BooleanField(default=False)
    judge_wrong = models.BooleanField(default=False)
    rubric_problem = models.BooleanField(default=False)
    problem_criterion = models.UUIDField(null=True, blank=True)
    committed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["committed_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "reviewer"], name="pairwise_review_once")
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} on {self.item}: {self.winner}"


class AgreementSnapshot(models.Model):
    """The agreement page's report of a large scope (``annotation.reviews.snapshots``), as
    rendered, kept by a worker: computing and rendering it takes longer than a page may."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="agreement_snapshots"
    )
    scope = models.PositiveBigIntegerField(default=0, help_text="The queue's id; 0: every queue.")
    html = models.TextField()
    n_reviews = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "scope"], name="agreement_snapshot_once")
        ]

    def __str__(self) -> str:
        return f"agreement of {self.project} ({self.scope or 'every queue'})"
