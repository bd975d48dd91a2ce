"""Page input for imports (the file itself is read under the upload cap by the view)."""

from __future__ import annotations

from django import forms

from annotation.prompts.importers.formats import FORMATS


class ImportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[("", "Detect"), *((f, f) for f in FORMATS)], required=False, label="Format"
    )
    skip_invalid = forms.BooleanField(required=False, label="Skip invalid lines")
