"""Page input for co-authoring: the project's settings, a job on one prompt, a batch over
many, and the decision on a proposal."""

from __future__ import annotations

from django import forms

from annotation.forms import DefaultChoiceField, TextField
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings

PROMPT_FILTERS = {
    "no_rubric": "Prompts without a rubric",
    "all": "All prompts",
    "with_pairs": "Prompts with a preference pair",
}
BATCH_KINDS = [
    (CoauthorJob.Kind.DRAFT.value, CoauthorJob.Kind.DRAFT.label),
    (CoauthorJob.Kind.CONTRASTIVE.value, CoauthorJob.Kind.CONTRASTIVE.label),
]
MAX_ID = 10**11


def _a(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def id_field(label: str) -> forms.IntegerField:
    return forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        label=label,
        error_messages={"invalid": f"That is not {_a(label)} {label.lower()} id."},
    )


class CoauthorSettingsForm(forms.Form):
    endpoint = id_field("Endpoint")
    style = forms.ChoiceField(choices=CoauthorSettings.Style.choices, required=False)
    contrastive_tries = forms.IntegerField(
        required=False, min_value=1, max_value=10, label="Contrastive tries"
    )
    refine_rounds = forms.IntegerField(
        required=False, min_value=1, max_value=5, label="Refine rounds"
    )


class CoauthorStartForm(forms.Form):
    """A job on one prompt; the kind and what each kind needs are the service's to check."""

    kind = forms.CharField(required=False)
    label = id_field("Preference pair")
    reference = TextField(required=False, strip=False, label="The reference answer")
    endpoint = id_field("Endpoint")


class _Keys(forms.MultipleChoiceField):
    """Ticked criterion keys; which of them the proposal holds is the service's to check."""

    def valid_value(self, value: str) -> bool:
        return True


class ProposalDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[
            ("accept_all", "Accept all"),
            ("accept_selected", "Accept selected"),
            ("reject", "Reject"),
        ]
    )
    accept = _Keys(required=False)

    def accepted(self) -> list[str] | None:
        """What to accept: None for everything, else the ticked changes (none: reject)."""
        decision = self.cleaned_data["decision"]
        if decision == "accept_all":
            return None
        return [] if decision == "reject" else list(self.cleaned_data["accept"])


class BatchForm(forms.Form):
    kind = DefaultChoiceField(
        choices=BATCH_KINDS,
        default=CoauthorJob.Kind.DRAFT,
        error_messages={
            "invalid_choice": "A batch drafts rubrics or derives contrastive ones.",
        },
    )
    which = DefaultChoiceField(choices=list(PROMPT_FILTERS.items()), default="no_rubric")
    limit = forms.IntegerField(required=False, min_value=1, label="How many prompts")
    endpoint = id_field("Endpoint")
    launch = forms.BooleanField(required=False)
