"""Imports are atomic by default; ``skip_invalid`` imports the valid records and lists the
skipped ones. Each entry point is covered: the service, the command, the page and the API."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.projects.models import AuditEvent, Project
from annotation.prompts import import_writing
from annotation.prompts import services as prompt_services
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics.models import Criterion, Rubric, RubricVersion


def hb_row(prompt_id: str, question: str, points: object = 5) -> dict[str, object]:
    return {
        "prompt_id": prompt_id,
        "prompt": [{"role": "user", "content": question}],
        "rubrics": [{"criterion": f"Answers: {question}", "points": points, "tags": []}],
    }


# Six lines: three good records and three bad ones of different kinds. Lines 2 and 4 are
# bad in themselves; line 5 is only bad once line 1 is in the project (same prompt id,
# other messages), so the atomic import, which stops writing at line 2, never meets it.
MIXED = [
    json.dumps(hb_row("p1", "What is a fever?")),
    "{oops",
    json.dumps(hb_row("p2", "What is a cough?")),
    json.dumps(hb_row("p-bad", "Bad points", points="9")),
    json.dumps(hb_row("p1", "Another question under p1's id")),
    json.dumps(hb_row("p3", "What is a rash?")),
]
SKIPPED = [
    {
        "line": 2,
        "reason": "invalid JSON: Expecting property name enclosed in double quotes at column 2",
    },
    {"line": 4, "reason": "rubrics[0].points must be a number, got a string"},
    {"line": 5, "reason": "prompt 'p1' already exists in this project with different messages"},
]


def mixed_bytes() -> bytes:
    return ("\n".join(MIXED) + "\n").encode()


@pytest.fixture
def mixed_path(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(mixed_bytes())
    return path


def upload(name: str = "mixed.jsonl", data: bytes | None = None) -> io.BytesIO:
    handle = io.BytesIO(mixed_bytes() if data is None else data)
    handle.name = name
    return handle


def table_state() -> dict[str, object]:
    """Everything an import can write, to show that an atomic import wrote none of it."""
    return {
        "prompts": list(Prompt.objects.order_by("id").values_list("external_id", "messages")),
        "metadata": list(Prompt.objects.order_by("id").values_list("metadata", flat=True)),
        "responses": Response.objects.count(),
        "rubrics": Rubric.objects.count(),
        "versions": RubricVersion.objects.count(),
        "criteria": list(Criterion.objects.order_by("id").values_list("text", "points")),
        "labels": PreferenceLabel.objects.count(),
        "audit": AuditEvent.objects.filter(action="data.import").count(),
    }


def imported_ids(project: Project) -> list[str]:
    return sorted(Prompt.objects.filter(project=project).values_list("external_id", flat=True))


# --- the service ----------------------------------------------------------------------


def test_atomic_default_writes_nothing_and_lists_the_bad_lines(project, tmp_path, mixed_path):
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text(json.dumps(hb_row("p0", "Already here")) + "\n")
    assert prompt_services.data_import(project=project, path=earlier).ok
    before = table_state()

    report = prompt_services.data_import(project=project, path=mixed_path)

    assert not report.ok and not report.committed and not report.skip_invalid
    assert report.errors == SKIPPED[:2] and report.error_count == 2 and report.skipped == 0
    assert report.prompts_created == report.criteria_created == 0
    assert report.as_dict()["unchanged"] is False
    assert table_state() == before
    assert imported_ids(project) == ["p0"]


def test_skip_invalid_imports_the_valid_records_and_reports_the_skipped(project, mixed_path):
    report = prompt_services.data_import(project=project, path=mixed_path, skip_invalid=True)

    assert report.committed and not report.ok and report.skip_invalid
    assert report.errors == SKIPPED and report.error_count == report.skipped == 3
    assert report.records == 4  # the lines that parsed: 1, 3, 5 and 6
    assert (report.prompts_created, report.rubrics_created, report.criteria_created) == (3, 3, 3)
    assert imported_ids(project) == ["p1", "p2", "p3"]
    p1 = Prompt.objects.get(project=project, external_id="p1")
    assert p1.messages == [{"role": "user", "content": "What is a fever?"}]
    assert Criterion.objects.count() == 3
    event = AuditEvent.objects.get(action="data.import")
    assert event.data["skipped"] == 3 and event.data["prompts_created"] == 3

    again = prompt_services.data_import(project=project, path=mixed_path, skip_invalid=True)
    assert again.committed and not again.changed and again.as_dict()["unchanged"] is True
    assert again.errors == SKIPPED and again.prompts_unchanged == 3
    assert Criterion.objects.count() == 3


def test_skip_invalid_reports_more_than_fifty_bad_lines_by_count(project, tmp_path):
    rows = [json.dumps(hb_row("ok", "Fine"))] + ["not json"] * 60
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(rows) + "\n")
    report = prompt_services.data_import(project=project, path=path, skip_invalid=True)
    assert report.committed and report.prompts_created == 1
    assert report.skipped == 60 and len(report.errors) == 50
    assert [e["line"] for e in report.errors[:2]] == [2, 3]


HH_PAIR = {
    "chosen": "\n\nHuman: Break me\n\nAssistant: Sure.",
    "rejected": "\n\nHuman: Break me\n\nAssistant: No.",
}
HH_FINE = {
    "chosen": "\n\nHuman: Keep me\n\nAssistant: Yes.",
    "rejected": "\n\nHuman: Keep me\n\nAssistant: Nope.",
}


@pytest.fixture
def failing_label(monkeypatch):  # type: ignore[no-untyped-def]
    """The database refuses the preference label of the 'Break me' prompt: the record's
    prompt and responses are written before the failure (in its batch, and again when the
    batch is written record by record)."""
    original = import_writing.insert_rows

    def insert_rows(model, columns, rows):  # type: ignore[no-untyped-def]
        rows = list(rows)
        if model is PreferenceLabel:
            prompts = Prompt.objects.filter(pk__in=[row[0] for row in rows])
            if any(p.messages[0]["content"] == "Break me" for p in prompts):
                raise IntegrityError("refused by the test")
        return original(model, columns, rows)

    monkeypatch.setattr(import_writing, "insert_rows", insert_rows)


def test_skip_invalid_undoes_a_record_that_fails_while_being_written(
    project, tmp_path, failing_label
):
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps(HH_FINE) + "\n" + json.dumps(HH_PAIR) + "\n")

    report = prompt_services.data_import(project=project, path=path, skip_invalid=True)

    assert report.committed and report.skipped == 1
    assert report.errors == [
        {"line": 2, "reason": "could not be stored (IntegrityError: refused by the test)"}
    ]
    assert (report.prompts_created, report.responses_created) == (1, 2)
    assert [p.messages[0]["content"] for p in Prompt.objects.all()] == ["Keep me"]
    assert Response.objects.count() == 2 and PreferenceLabel.objects.count() == 1

    with pytest.raises(ApplicationError, match="line 2 could not be stored"):
        prompt_services.data_import(project=project, path=path)
    assert Prompt.objects.count() == 1  # the atomic import rolled back its own writes


# --- the command ----------------------------------------------------------------------


def test_command_skip_invalid(project, mixed_path, capsys):
    with pytest.raises(CommandError, match="2 bad record.*nothing was imported"):
        call_command("import_data", str(mixed_path), "--project", "fresh", "--create-project")
    assert not Project.objects.filter(slug="fresh").exists()
    err = capsys.readouterr().err
    assert "line 2: invalid JSON" in err and "line 4: rubrics[0].points" in err

    call_command(
        "import_data", str(mixed_path), "--project", "fresh", "--create-project", "--skip-invalid"
    )
    out, err = capsys.readouterr()
    assert "prompts:           3 created, 0 unchanged" in out
    assert "skipped 3 bad record(s)" in err
    for skipped in SKIPPED:
        assert f"line {skipped['line']}: {skipped['reason']}" in err
    fresh = Project.objects.get(slug="fresh")
    assert imported_ids(fresh) == ["p1", "p2", "p3"]

    call_command("import_data", str(mixed_path), "--project", "fresh", "--skip-invalid", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["committed"] is True and report["skipped"] == 3 and report["unchanged"] is True
    assert report["errors"] == SKIPPED


# --- the page -------------------------------------------------------------------------


def test_import_page_skip_invalid_checkbox(client, project, editor):
    client.force_login(editor)
    url = reverse("annotation:import", args=[project.slug])
    page = client.get(url).content.decode()
    assert 'name="skip_invalid"' in page and 'type="checkbox"' in page

    html = client.post(url, {"file": upload()}, HTTP_HX_REQUEST="true").content.decode()
    assert "Nothing imported" in html and "2 bad records" in html
    assert Prompt.objects.count() == 0

    data = {"file": upload(), "skip_invalid": "1"}
    html = client.post(url, data, HTTP_HX_REQUEST="true").content.decode()
    assert "Imported" in html and "Skipped 3 bad records" in html
    for skipped in SKIPPED:
        assert f'<td class="num">{skipped["line"]}</td>' in html
    assert "different messages" in html
    assert imported_ids(project) == ["p1", "p2", "p3"]


def test_import_page_skip_invalid_keeps_the_roles(client, project, viewer, outsider):
    url = reverse("annotation:import", args=[project.slug])
    client.force_login(viewer)
    assert client.post(url, {"file": upload(), "skip_invalid": "1"}).status_code == 403
    client.force_login(outsider)
    assert client.post(url, {"file": upload(), "skip_invalid": "1"}).status_code == 404
    assert Prompt.objects.count() == 0


# --- the API --------------------------------------------------------------------------


def test_import_api_skip_invalid(api, project, editor):
    api.force_authenticate(editor)
    url = f"/api/projects/{project.slug}/import/"

    atomic = api.post(url, {"file": upload()}, format="multipart")
    assert atomic.status_code == 400
    body = atomic.json()
    assert body["committed"] is False and body["skip_invalid"] is False
    assert body["errors"] == SKIPPED[:2] and body["skipped"] == 0
    assert Prompt.objects.count() == 0

    skipping = api.post(url, {"file": upload(), "skip_invalid": "true"}, format="multipart")
    assert skipping.status_code == 201
    body = skipping.json()
    assert body["committed"] is True and body["ok"] is False and body["skip_invalid"] is True
    assert body["skipped"] == 3 and body["errors"] == SKIPPED
    assert body["prompts_created"] == 3
    assert imported_ids(project) == ["p1", "p2", "p3"]

    again = api.post(url, {"file": upload(), "skip_invalid": "true"}, format="multipart")
    assert again.status_code == 200 and again.json()["unchanged"] is True


def test_import_api_skip_invalid_keeps_the_roles(api, project, viewer, outsider):
    url = f"/api/projects/{project.slug}/import/"
    api.force_authenticate(viewer)
    data = {"file": upload(), "skip_invalid": "true"}
    assert api.post(url, data, format="multipart").status_code == 403
    api.force_authenticate(outsider)
    data = {"file": upload(), "skip_invalid": "true"}
    assert api.post(url, data, format="multipart").status_code == 404
    assert Prompt.objects.count() == 0
