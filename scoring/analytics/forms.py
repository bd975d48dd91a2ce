"""Page input for the near-duplicates panel."""

from __future__ import annotations

from django import forms


class PollForm(forms.Form):
    """Which poll of the panel this is (anything unreadable: the first)."""

    attempt = forms.IntegerField(required=False, min_value=0, max_value=10**8)


class MergeForm(forms.Form):
    keep = forms.CharField(required=False)
    drop = forms.CharField(required=False)
    # The version the page showed; unreadable: unknown (the service then checks nothing).
    base = forms.IntegerField(required=False, min_value=0, max_value=10**8)
