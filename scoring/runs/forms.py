"""Page input for scoring runs: the form that previews and starts a run, the queue made
from a pairwise run, and a run's controls."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from annotation.forms import DefaultChoiceField, TextField, count_field
from annotation.reviews.models import ReviewQueue
from annotation.rubrics.models import Rubric
from scoring.coauthoring.forms import id_field
from scoring.runs.models import Run
from scoring.runs.modes.registry import mode_for
from scoring.runs.subsets import Subset


def _number(name: str, kind: type[forms.Field], **kwargs: Any) -> forms.Field:
    return kind(
        required=False,
        label=name,
        error_messages={"invalid": f"{name} must be a number."},
        **kwargs,
    )


class SourcesField(forms.MultipleChoiceField):
    """Response sources by name; an unknown one matches no response (the planner's to say)."""

    def valid_value(self, value: str) -> bool:
        return True


class RunForm(forms.Form):
    name = TextField(required=False, max_length=200, label="The name")
    endpoint = id_field("Endpoint")
    mode = DefaultChoiceField(choices=Run.Mode.choices, default=Run.Mode.PER_CRITERION)
    sources = SourcesField(required=False)
    versions = DefaultChoiceField(choices=Run.Versions.choices, default=Run.Versions.LATEST)
    samples = _number("samples", forms.IntegerField)
    temperature = _number("temperature", forms.FloatField)
    pair_plan = forms.CharField(required=False)
    baseline_source = TextField(required=False, label="The baseline source")
    pairs_per_prompt = _number("pairs per prompt", forms.IntegerField)
    budget = _number("The budget", forms.FloatField)
    launch = forms.BooleanField(required=False)
    # The prompts: all of them, or a subset (scoring.runs.subsets).
    subset_q = forms.CharField(required=False, max_length=200, label="Search")
    subset_status = forms.ChoiceField(
        choices=[("", "any"), *Rubric.Status.choices], required=False, label="Rubric status"
    )
    subset_tags = forms.CharField(required=False, label="Criterion tags")
    subset_ids = forms.CharField(required=False, label="Prompt ids")
    sample = count_field("Random sample of k prompts", low=1, required=False)
    seed = count_field("Seed", required=False)

    def subset(self) -> Subset:
        data = self.cleaned_data
        return Subset(
            q=data["subset_q"].strip(),
            rubric_status=data["subset_status"],
            tags=tuple(t.strip() for t in data["subset_tags"].split(",") if t.strip()),
            external_ids=tuple(i for i in re.split(r"[\s,]+", data["subset_ids"]) if i),
            sample=data["sample"],
            seed=data["seed"] or 0,
        )

    def run_options(self) -> dict[str, Any]:
        """The options ``run_create`` and ``plan_units`` take."""
        data = self.cleaned_data
        pairwise = mode_for(data["mode"]).compares_pairs
        return {
            "mode": data["mode"],
            "sources": [s for s in data["sources"] if s],
            "versions": data["versions"],
            "samples": 1 if data["samples"] is None else data["samples"],
            "temperature": data["temperature"],
            "pair_plan": data["pair_plan"] if pairwise else "",
            "baseline_source": data["baseline_source"],
            "pairs_per_prompt": 3 if data["pairs_per_prompt"] is None else data["pairs_per_prompt"],
        }


class RunQueueForm(forms.Form):
    """A review queue of a pairwise run's pairs (the plan's rules are the service's)."""

    name = TextField(required=False, max_length=200, label="The name")
    plan = DefaultChoiceField(choices=ReviewQueue.Plan.choices, default=ReviewQueue.Plan.ALL)
    sample_size = count_field("k", required=False, invalid="k must be a whole number.")
    overlap = count_field("Reviewers per item", required=False)
    lock_minutes = count_field("Hold minutes", required=False)
    show_sources = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["overlap"] = 2 if data.get("overlap") is None else data["overlap"]
        data["lock_minutes"] = 15 if data.get("lock_minutes") is None else data["lock_minutes"]
        return data


class RunControlForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("pause", "Pause"),
            ("resume", "Resume"),
            ("cancel", "Cancel"),
            ("retry_failed", "Retry failed"),
        ]
    )
    budget = _number("The budget", forms.FloatField)


class RunChoiceForm(forms.Form):
    """The run a prompt's verdicts panel shows (none: the latest finished one)."""

    run = id_field("Run")
