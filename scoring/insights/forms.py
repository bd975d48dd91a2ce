"""Page input of the Analytics tab."""

from __future__ import annotations

from django import forms

from scoring.coauthoring.forms import id_field


class AnalyticsChoiceForm(forms.Form):
    """The run shown (none: the latest graded run), and one rubric's criteria (none: all)."""

    run = id_field("Run")
    rubric = id_field("Rubric")


class CritiqueForm(forms.Form):
    """A flagged criterion whose rubric goes to Critique."""

    key = forms.CharField(max_length=64)
