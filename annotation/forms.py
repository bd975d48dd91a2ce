"""Page input: a Django form validates it, once. ``cleaned`` turns a form's errors into
the one domain error (``ApplicationError``), which ``annotation.page_errors`` shows to
the person who sent it; the services keep their own checks of what only they can know
(does the user exist, is the version current)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.http import QueryDict

from annotation.errors import ApplicationError


def cleaned(form_class: type[forms.Form], data: QueryDict | dict[str, Any]) -> dict[str, Any]:
    """The form's cleaned data, or an ``ApplicationError`` naming each field that is wrong."""
    form = form_class(data)
    if not form.is_valid():
        raise ApplicationError(error_text(form))
    return form.cleaned_data


def error_text(form: forms.Form) -> str:
    """Each wrong field's messages, named by its label unless the message already names it."""
    parts = []
    for name, errors in form.errors.items():
        text = " ".join(str(e) for e in errors)
        label = "" if name == "__all__" else str(form.fields[name].label or name)
        parts.append(text if not label or text.startswith(label) else f"{label}: {text}")
    return " ".join(parts)


def validated(serializer: Any) -> dict[str, Any]:
    """A DRF serializer's validated data (where a page shares the API's rules), or an
    ``ApplicationError`` naming each field that is wrong."""
    if not serializer.is_valid():
        raise ApplicationError(serializer_error_text(serializer.errors))
    return dict(serializer.validated_data)


def serializer_error_text(errors: Any, name: str = "") -> str:
    if isinstance(errors, dict):
        return " ".join(
            serializer_error_text(v, name if k == "non_field_errors" or isinstance(k, int) else k)
            for k, v in errors.items()
        )
    if isinstance(errors, list):
        return " ".join(serializer_error_text(e, name) for e in errors)
    text, label = str(errors), name.replace("_", " ")
    return text if not label or text.startswith(label) else f"{label}: {text}"


class DefaultChoiceField(forms.ChoiceField):
    """A choice a form may leave out: then it is ``default``."""

    def __init__(self, *, default: str, **kwargs: Any) -> None:
        super().__init__(required=False, initial=default, **kwargs)
        self.default = default

    def clean(self, value: Any) -> str:
        return super().clean(value) or self.default


class TextField(forms.CharField):
    """Free text. PostgreSQL cannot store a NUL character: it is refused, naming the field."""

    def __init__(self, *, label: str, **kwargs: Any) -> None:
        super().__init__(label=label, **kwargs)
        self.validators = [
            v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)
        ]
        self.validators.append(
            ProhibitNullCharactersValidator(
                message=f"{label} contains a NUL character, which cannot be stored."
            )
        )


def count_field(
    label: str, *, low: int = 0, high: int = 1_000_000, invalid: str = "", **kwargs: Any
) -> forms.IntegerField:
    """A whole number within bounds, with errors that say so in the field's own words."""
    between = f"{label} is between {low:,} and {high:,}."
    return forms.IntegerField(
        min_value=low,
        max_value=high,
        label=label,
        error_messages={
            "invalid": invalid or f"{label} is a whole number.",
            "min_value": between,
            "max_value": between,
        },
        **kwargs,
    )
