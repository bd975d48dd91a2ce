"""The Import page teaches: each format with an example and a template that imports as it
is, and a preview of what the first records of a file would create, before importing."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.prompts import services as import_services
from annotation.prompts.import_preview import data_preview
from annotation.prompts.importers.formats import FORMATS, detect_format
from annotation.prompts.importers.guides import GUIDES
from annotation.prompts.models import ImportJob, Prompt, Response
from annotation.rubrics.models import Rubric
from tests.annotation.prompts.test_import_jobs import jsonl

HX = {"HTTP_HX_REQUEST": "true"}


def test_every_format_has_a_guide():
    assert {g.format for g in GUIDES} == set(FORMATS)
    assert len({g.key for g in GUIDES}) == len(GUIDES)


@pytest.mark.parametrize("guide", GUIDES, ids=lambda g: g.key)
def test_each_template_imports_as_it_is_and_its_example_is_its_first_record(
    guide, project, editor, tmp_path
):
    path = tmp_path / guide.file_name
    path.write_text(guide.template(), encoding="utf-8")
    assert detect_format(path) == guide.format
    report = import_services.data_import(project=project, path=path, actor=editor)
    assert report.committed and not report.errors, report.errors
    assert report.prompts_created == len(guide.records) == Prompt.objects.count()
    expected_rubrics = sum(1 for r in guide.records if r.get("rubrics") or r.get("rubric"))
    assert report.rubrics_created == expected_rubrics == Rubric.objects.count()
    if guide.extension == "csv":
        (row,) = csv.DictReader(io.StringIO(guide.example()))
        assert row == {k: str(v) for k, v in guide.records[0].items()}
    else:
        assert json.loads(guide.example()) == guide.records[0]


def test_templates_download_for_editors_only(client, project, personas):
    url = reverse("annotation:import_template", args=[project.slug, "healthbench"])
    client.force_login(personas["editor"])
    answer = client.get(url)
    assert answer.status_code == 200
    assert answer["Content-Disposition"] == 'attachment; filename="healthbench-template.jsonl"'
    first = json.loads(answer.content.decode().splitlines()[0])
    assert first["prompt_id"] == "headache-neck" and len(first["rubrics"]) == 3
    csv_answer = client.get(
        reverse("annotation:import_template", args=[project.slug, "generic-csv"])
    )
    assert csv_answer["Content-Type"].startswith("text/csv")
    assert csv_answer.content.decode().startswith("id,prompt,response,source,specialty\n")
    assert (
        client.get(reverse("annotation:import_template", args=[project.slug, "nope"])).status_code
        == 404
    )
    client.force_login(personas["reviewer"])
    assert client.get(url).status_code == 403
    client.force_login(personas["outsider"])
    assert client.get(url).status_code == 404


def test_the_page_lists_each_format_with_its_example_and_template(client, project, editor):
    client.force_login(editor)
    html = client.get(reverse("annotation:import", args=[project.slug])).content.decode()
    for guide in GUIDES:
        assert f'id="format-{guide.key}"' in html
        assert reverse("annotation:import_template", args=[project.slug, guide.key]) in html
    assert "Advises urgent care for headache with neck stiffness." in html  # an example
    assert 'name="preview"' in html


def _preview(client, project, data: bytes, name: str, **extra):  # type: ignore[no-untyped-def]
    url = reverse("annotation:import", args=[project.slug])
    body = {"file": SimpleUploadedFile(name, data), "preview": "1", **extra}
    return client.post(url, body, **HX).content.decode()


def test_a_preview_shows_what_the_first_records_would_create_and_writes_nothing(
    client, project, editor, tmp_path
):
    client.force_login(editor)
    guide = next(g for g in GUIDES if g.key == "generic")
    records = [*guide.records, "{oops", *({"id": f"q{i}", "prompt": f"Q{i}?"} for i in range(8))]
    html = _preview(client, project, jsonl(records), "mine.jsonl")
    assert "<html" not in html and 'id="import-preview"' in html
    assert "mine.jsonl · generic (detected)" in html
    assert "The first 5 records of the file, and 1 bad line among them." in html
    assert "Nothing is imported yet" in html
    assert html.count("a new prompt") == 5
    assert "2 responses (model-a, model-b)" in html
    assert "a rubric of 2 criteria" in html and "States the 4 g daily maximum." in html
    assert "a dataset preference label: model-a over model-b" in html
    assert '<td class="num">3</td><td>' in html  # the bad line, with its reason
    assert not Prompt.objects.exists() and not ImportJob.objects.exists()

    # Imported, the same file previews as kept; a changed prompt under the same id is refused.
    (tmp_path / "t.jsonl").write_text(guide.template(), encoding="utf-8")
    import_services.data_import(project=project, path=tmp_path / "t.jsonl", actor=editor)
    html = _preview(client, project, guide.template().encode(), "again.jsonl")
    assert "The whole file: 2 records." in html
    assert html.count("the prompt exists already (kept)") == 2
    assert "no rubric: the prompt has one already (kept)" in html
    changed = {**guide.records[0], "messages": [{"role": "user", "content": "Something else?"}]}
    html = _preview(client, project, jsonl([changed]), "changed.jsonl")
    assert "refused: a prompt with this id exists with other messages" in html
    assert Prompt.objects.count() == 2 and Response.objects.count() == 2


def test_a_preview_of_a_csv_or_a_gzip_keeps_its_format_and_names_whole_file_problems(
    client, project, editor, tmp_path
):
    import gzip

    client.force_login(editor)
    csv_guide = next(g for g in GUIDES if g.key == "generic-csv")
    html = _preview(client, project, csv_guide.template().encode(), "rows.csv")
    assert "rows.csv · generic (detected)" in html and html.count("a new prompt") == 2
    assert "1 response (model-a)" in html
    packed = gzip.compress(next(g for g in GUIDES if g.key == "rar").template().encode())
    html = _preview(client, project, packed, "rar.jsonl.gz")
    assert "rar.jsonl.gz · rar (detected)" in html and "(essential)" in html
    html = _preview(client, project, b"name,age\nx,1\n", "bad.csv")
    assert "CSV needs a &#x27;prompt&#x27; column" in html and "Nothing imported" in html
    html = _preview(client, project, jsonl(csv_guide.records), "x.jsonl", format="healthbench")
    assert "x.jsonl · healthbench</span>" in html and "prompt must be a list, got a string" in html
    assert not Prompt.objects.exists()


def test_data_preview_reads_only_the_start(project, tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_bytes(jsonl([{"id": f"q{i}", "prompt": f"Q{i}?"} for i in range(10_000)]))
    preview = data_preview(project=project, path=path, count=3)
    assert [r.external_id for r in preview.records] == ["q0", "q1", "q2"]
    assert preview.more and not preview.errors


def test_a_large_upload_still_previews_in_the_request(client, project, editor, settings):
    settings.IMPORT_INLINE_MAX_BYTES = 100  # an import of it would go to a worker
    client.force_login(editor)
    html = _preview(
        client, project, jsonl([{"prompt": f"Q{i}?" * 20} for i in range(50)]), "big.jsonl"
    )
    assert html.count("a new prompt") == 5 and not ImportJob.objects.exists()
