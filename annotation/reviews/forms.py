"""Page input for review queues, reviewing and adjudication."""

from __future__ import annotations

import math
from typing import Any

from django import forms

from annotation.forms import DefaultChoiceField, TextField, count_field
from annotation.reviews.models import ReviewQueue

CHOICES = ("A", "B", "tie")
QUEUE_PLANS = (
    ReviewQueue.Plan.ALL,
    ReviewQueue.Plan.RANDOM,
    ReviewQueue.Plan.STRATIFIED,
)  # the plans that make sense for preference pairs (no judge confidence to filter on)
QUEUE_PLAN_CHOICES = [(p.value, p.label) for p in QUEUE_PLANS]


class QueueForm(forms.Form):
    """A queue made from the project's imported preference pairs."""

    name = TextField(max_length=200, required=False, label="The name")
    plan = DefaultChoiceField(
        choices=[(p.value, p.label) for p in QUEUE_PLANS],
        default=ReviewQueue.Plan.ALL,
        error_messages={"invalid_choice": "Unknown sampling plan “%(value)s”."},
    )
    k = count_field("k (pairs to sample)", required=False)
    overlap = count_field("Reviewers per item", required=False)
    lock_minutes = count_field("Minutes an item is held", required=False)
    show_sources = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["overlap"] = 2 if data.get("overlap") is None else data["overlap"]
        data["lock_minutes"] = 15 if data.get("lock_minutes") is None else data["lock_minutes"]
        return data


class ReviewForm(forms.Form):
    """A reviewer's decision on one pair, with a mark per criterion of the pair's rubric
    (fields ``mark-<criterion key>``, as the reviewer saw the sides)."""

    choice = forms.ChoiceField(
        choices=[(c, c) for c in CHOICES],
        error_messages={
            "required": "Choose A, B or tie (keys 1, 2, 3) before committing.",
            "invalid_choice": "Choose A, B or tie (keys 1, 2, 3) before committing.",
        },
    )
    rationale = TextField(required=False, strip=False, label="The rationale")
    confidence = count_field("Confidence", low=1, high=5, required=False)
    # Time on the pair as the page measured it: unreadable counts as unknown (0), and the
    # service bounds the rest; a decision is never refused for it.
    seconds = forms.CharField(required=False)

    def __init__(self, data: Any, *, criteria: list[str]) -> None:
        super().__init__(data)
        self.criteria = criteria
        for key in criteria:
            self.fields[f"mark-{key}"] = forms.ChoiceField(
                choices=[(c, c) for c in CHOICES],
                required=False,
                label="Criterion mark",
                error_messages={"invalid_choice": "Mark a criterion A, B or tie."},
            )
        marked = (n.removeprefix("mark-") for n, v in data.items() if n.startswith("mark-") and v)
        self.unknown_mark = any(key not in criteria for key in marked)

    def clean_seconds(self) -> float:
        try:
            seconds = float(self.cleaned_data["seconds"])
        except ValueError:
            return 0.0
        return seconds if math.isfinite(seconds) else 0.0

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.unknown_mark:
            raise forms.ValidationError("A marked criterion is not in this pair's rubric.")
        data["marks"] = {
            key: data[f"mark-{key}"] for key in self.criteria if data.get(f"mark-{key}")
        }
        return data


class FlagForm(forms.Form):
    judge_wrong = forms.BooleanField(required=False)
    rubric_problem = forms.BooleanField(required=False)
    criterion = TextField(required=False, label="Criterion")


class AdjudicationForm(forms.Form):
    item = forms.IntegerField(
        min_value=1, max_value=10**11, error_messages={"required": "Name the pair to adjudicate."}
    )
    winner = TextField(required=False, label="Winner")


class QueueChoiceForm(forms.Form):
    """The queue a page is narrowed to (none: the whole project)."""

    queue = forms.IntegerField(required=False, min_value=1, max_value=10**9)
