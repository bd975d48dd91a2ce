"""The Import page in headless Chromium: a small file's report at once; a large one as a
job whose card polls itself (htmx ``every 1s``, no script of the page's own) until the
report replaces it; an upload over the cap refused with the cap's name."""

from __future__ import annotations

import json

import pytest

from annotation.projects import services as project_services
from annotation.prompts.models import ImportJob, Prompt
from tests.browser.conftest import login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def jsonl(n: int, start: int = 0) -> bytes:
    return "".join(
        json.dumps({"id": f"q{i}", "prompt": f"Question {i}?"}) + "\n"
        for i in range(start, start + n)
    ).encode()


def test_import_small_and_large_files_from_the_page(page, live_server, settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_INLINE_MAX_BYTES = 2_000
    settings.IMPORT_MAX_UPLOAD_BYTES = 100_000
    owner = UserFactory(username="dr-import")
    project = project_services.project_create(name="Imports", slug="imp", owner=owner)
    login(page, live_server, "dr-import")
    page.goto(f"{live_server.url}/p/imp/import/")

    def send(name: str, data: bytes) -> None:
        page.set_input_files(
            "input[name=file]", files=[{"name": name, "mimeType": "text/plain", "buffer": data}]
        )
        page.click("form button.primary")

    send("small.jsonl", jsonl(3))
    page.wait_for_selector("#report >> text=Imported")
    assert "Prompts created / unchanged" in page.inner_text("#report")

    send("large.jsonl", jsonl(200, start=3))
    # The job runs once its request commits (tasks run eagerly here), so the card first
    # shows the queued job, then its next poll the report.
    page.wait_for_selector("#report:has-text('large.jsonl'):has-text('Imported')")
    assert page.locator("#report[hx-trigger]").count() == 0  # stopped polling
    assert Prompt.objects.filter(project=project).count() == 203
    assert list(ImportJob.objects.values_list("file_name", "status")) == [
        ("large.jsonl", "done"),
        ("small.jsonl", "done"),
    ]

    send("huge.jsonl", jsonl(5_000, start=1_000))
    page.wait_for_selector("#report:has-text('the cap IMPORT_MAX_UPLOAD_BYTES')")
    assert "Nothing imported" in page.inner_text("#report")
    assert ImportJob.objects.count() == 2


def test_a_format_template_previewed_then_imported(page, live_server, settings, tmp_path):  # type: ignore[no-untyped-def]
    """An editor opens a format's example, downloads its template, previews it (nothing is
    written) and imports it from the same form."""
    from tests.browser.conftest import SHOTS

    settings.MEDIA_ROOT = tmp_path / "media"
    owner = UserFactory(username="dr-template")
    project = project_services.project_create(name="Templates", slug="tpl", owner=owner)
    login(page, live_server, "dr-template")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/p/tpl/import/")
    page.click("#format-healthbench summary")
    assert "headache-neck" in page.inner_text("#format-healthbench pre.example")
    with page.expect_download() as download:
        page.click("#format-healthbench a[download]")
    template = tmp_path / download.value.suggested_filename
    download.value.save_as(template)
    assert template.name == "healthbench-template.jsonl"
    page.set_input_files("input[name=file]", str(template))
    page.click("button[name=preview]")
    page.wait_for_selector("#import-preview")
    preview = page.inner_text("#import-preview")
    assert "The whole file: 2 records." in preview and "a rubric of 3 criteria" in preview
    assert not Prompt.objects.filter(project=project).exists()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "import-preview.png"), full_page=True)
    page.click("form button.primary")
    page.wait_for_selector("#report:has-text('Prompts created / unchanged')")
    assert Prompt.objects.filter(project=project).count() == 2
