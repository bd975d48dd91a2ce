"""Page input for judge probes: the form that starts one."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from annotation.forms import DefaultChoiceField, TextField, count_field
from scoring.coauthoring.forms import id_field
from scoring.probes.services import KIND_LABELS, MAX_SAMPLE, MODES
from scoring.runs.forms import SourcesField
from scoring.runs.models import Run
from scoring.runs.subsets import Subset


class ProbeForm(forms.Form):
    name = TextField(required=False, max_length=200, label="The name")
    endpoint = id_field("Judge")
    rewriter = id_field("Rewriting endpoint")
    mode = DefaultChoiceField(
        choices=[(m, Run.Mode(m).label) for m in MODES], default=Run.Mode.PER_CRITERION
    )
    versions = DefaultChoiceField(choices=Run.Versions.choices, default=Run.Versions.LATEST)
    kinds = forms.MultipleChoiceField(
        choices=list(KIND_LABELS.items()),
        label="What to probe",
        error_messages={"required": "Choose at least one kind of probe."},
    )
    sources = SourcesField(required=False)
    sample = count_field("Responses to probe", low=1, high=MAX_SAMPLE)
    seed = count_field("Seed", required=False)
    samples = count_field("Samples per judgment", low=1, high=5, required=False)
    subset_ids = forms.CharField(required=False, label="Prompt ids")

    def subset(self) -> Subset:
        """The prompts to sample from: those external ids, or every prompt."""
        ids = tuple(i for i in re.split(r"[\s,]+", self.cleaned_data["subset_ids"]) if i)
        return Subset(external_ids=ids)

    def probe_options(self) -> dict[str, Any]:
        """The options ``probe_create`` takes (but the endpoints)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "mode": data["mode"],
            "versions": data["versions"],
            "kinds": data["kinds"],
            "sources": [s for s in data["sources"] if s],
            "sample": data["sample"],
            "seed": data["seed"] or 0,
            "samples": data["samples"] or 2,
        }
