"""A dataset export in headless Chromium: the Exports tab, the form, the export running to
Done, its files with rows and sha256, and a download. Screenshot: var/screenshots/exports.png."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from annotation.projects import services as project_services
from annotation.prompts import services as prompt_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Rubric
from scoring.datasets.models import Export
from tests.browser.conftest import SHOTS, login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_export_a_dataset_from_the_page(page, live_server, settings, tmp_path, healthbench_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-export")
    project = project_services.project_create(name="HealthBench", slug="hb", owner=owner)
    prompt_services.data_import(project=project, path=healthbench_path)
    reviewer = UserFactory(username="dr-review")
    project_services.membership_add(
        project=project, actor=owner, username="dr-review", role="reviewer"
    )
    for rubric in Rubric.objects.filter(project=project).order_by("pk")[:60]:
        rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=owner)
        rubric_workflow.rubric_review(rubric=rubric, actor=reviewer, decision="approve")

    login(page, live_server, "dr-export")
    page.goto(f"{live_server.url}/p/hb/")
    page.click("nav.tabs >> text=Exports")
    page.wait_for_selector("#export-form")
    page.select_option("select[name=kind]", "rl_verl")
    page.select_option("select[name=format]", "hf")
    page.fill("input[name=train]", "0.8")
    page.fill("input[name=validation]", "0.1")
    page.fill("input[name=test]", "0.1")
    first = Rubric.objects.filter(project=project).order_by("pk").first()
    page.fill("textarea[name=exclude]", first.prompt.external_id)
    page.fill("input[name=license]", "cc-by-4.0")
    page.click("#export-form button.primary")

    export = Export.objects.get()
    card = f"#export-{export.pk}"
    page.wait_for_selector(f"{card} [data-status=done]")
    text = page.inner_text(card)
    assert "Done" in text and "59 rows in 4 files" in text
    names = page.locator(f"{card} table.files tbody td:first-child").all_inner_texts()
    assert names == ["train.parquet", "validation.parquet", "test.parquet", "README.md"]
    export.refresh_from_db()
    for f in export.files:
        assert f["sha256"] in text

    with page.expect_download() as info:
        page.click(f"{card} >> text=README.md")
    download = info.value
    assert download.suggested_filename == f"hb-export-{export.pk}-README.md"
    data = Path(download.path()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == export.files[-1]["sha256"]
    page.screenshot(path=str(SHOTS / "exports.png"), full_page=True)

    # A running export's card follows its progress (htmx, every second) until it ends.
    running = Export.objects.create(
        project=project, kind="preferences", format="jsonl", status=Export.Status.RUNNING,
        rows_total=1000, rows_done=250, options={"kind": "preferences"},
    )  # fmt: skip
    page.goto(f"{live_server.url}/p/hb/exports/")
    running_card = f"#export-{running.pk}"
    assert "250 rows written" in page.inner_text(running_card)
    Export.objects.filter(pk=running.pk).update(rows_done=700)
    page.wait_for_selector(f"{running_card} >> text=700 rows written")
    Export.objects.filter(pk=running.pk).update(
        status=Export.Status.FAILED, error="Nothing to export: no preference pair matched."
    )
    page.wait_for_selector(f"{running_card} [data-status=failed]")
    assert "no preference pair matched" in page.inner_text(running_card)
    assert page.locator(f"{card} table.files").is_visible()  # the other card is untouched
