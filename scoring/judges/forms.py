"""Page input for the Judges page. An endpoint is validated by the API's serializer (one
set of rules for the page and the API); the page only differs in how a provider is named
(its id as text, kept where the current provider was disabled since)."""

from __future__ import annotations

from typing import Any

from django import forms
from rest_framework import serializers

from annotation.forms import validated
from scoring.judges.serializers import EndpointSerializer


class EndpointPageSerializer(EndpointSerializer):
    provider = serializers.CharField(required=False, allow_blank=True)  # type: ignore[assignment]


def endpoint_data(data: Any, *, partial: bool) -> dict[str, Any]:
    """An endpoint's fields from a page's form, typed by the API's rules."""
    return validated(EndpointPageSerializer(data=data, partial=partial))


class EndpointActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("save", "Save"), ("delete", "Delete")], required=False)
