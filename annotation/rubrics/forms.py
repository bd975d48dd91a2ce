"""Page input for rubrics outside the draft edits (whose fields the draft service checks
for the page and the API alike)."""

from __future__ import annotations

from django import forms

from annotation.forms import TextField
from annotation.rubrics.models import Rubric

WORKFLOW_ACTIONS = [
    ("submit", "Submit for review"),
    ("approve", "Approve"),
    ("request_changes", "Request changes"),
    ("archive", "Archive"),
]


class RubricStartForm(forms.Form):
    title = TextField(
        max_length=Rubric._meta.get_field("title").max_length,
        label="The title",
        error_messages={"required": "A project-wide rubric needs a title."},
    )


class WorkflowForm(forms.Form):
    action = forms.ChoiceField(choices=WORKFLOW_ACTIONS, label="Action")
    comment = TextField(required=False, label="The comment")


class DiffForm(forms.Form):
    """The two versions a diff compares; a missing or unreadable number means the default."""

    a = forms.IntegerField(required=False, min_value=1)
    b = forms.IntegerField(required=False, min_value=1)
