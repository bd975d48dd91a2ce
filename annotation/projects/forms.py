"""Page input for projects and members."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator

from annotation.forms import DefaultChoiceField, TextField
from annotation.projects.models import Project, Role


class ProjectCreateForm(forms.Form):
    name = TextField(max_length=Project._meta.get_field("name").max_length, label="The name")
    slug = TextField(required=False, label="The slug")  # slugified and cut by the service
    description = TextField(required=False, label="The description")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    role = DefaultChoiceField(choices=Role.choices, default=Role.VIEWER, label="Role")


class AccountCreateForm(forms.Form):
    """A new account for a colleague (an owner makes it; the colleague sets a password)."""

    username = forms.CharField(
        max_length=150, label="Username", validators=[UnicodeUsernameValidator()]
    )
    email = forms.EmailField(required=False, label="E-mail")
    role = DefaultChoiceField(choices=Role.choices, default=Role.VIEWER, label="Role")


class MemberUpdateForm(forms.Form):
    action = forms.ChoiceField(choices=[("role", "Set role"), ("remove", "Remove")], required=False)
    role = forms.ChoiceField(choices=Role.choices, required=False, label="Role")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") != "remove" and not data.get("role"):
            self.add_error("role", "Choose a role.")
        return data


class ProjectSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    """What an owner sets on the Settings page."""

    class Meta:
        model = Project
        fields = ["name", "description", "guidelines", "allow_self_approval"]
        labels = {
            "guidelines": "Guidelines for rubric authors and judges",
            "allow_self_approval": "The author of a rubric version may approve it",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "guidelines": forms.Textarea(attrs={"rows": 8}),
        }
