"""Import: real HealthBench data, atomicity, idempotency; the command, the page and the API."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.projects.models import Project
from annotation.prompts import services as prompt_services
from annotation.prompts.models import PreferenceLabel, Prompt, Response
from annotation.rubrics.models import Criterion, Rubric


def write_jsonl(path, rows):  # type: ignore[no-untyped-def]
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


HB_ROW = {
    "prompt": [{"role": "user", "content": "I have a fever of 39C, should I worry?"}],
    "rubrics": [
        {
            "criterion": "Advises seeing a doctor if over 3 days",
            "points": 7,
            "tags": ["axis:accuracy"],
        },
        {
            "criterion": "Recommends antibiotics without a test",
            "points": -6,
            "tags": ["axis:accuracy"],
        },
    ],
}


def test_healthbench_sample_imports_with_points_and_tags(project, healthbench_path):
    report = prompt_services.data_import(project=project, path=healthbench_path)
    assert report.ok and report.format == "healthbench"
    assert report.prompts_created == 250 and report.rubrics_created == 250
    assert report.criteria_created == 2955
    assert Prompt.objects.filter(project=project).count() == 250
    assert Rubric.objects.filter(project=project, prompt__isnull=False).count() == 250
    criteria = Criterion.objects.filter(version__rubric__project=project)
    assert criteria.count() == 2955
    assert criteria.filter(points__lt=0).count() == 904
    assert criteria.filter(category="pitfall").count() == 904
    # points and tags survive exactly, in order, for one real record
    first = json.loads(healthbench_path.open().readline())
    prompt = Prompt.objects.get(project=project, external_id=first["prompt_id"])
    stored = list(
        Criterion.objects.filter(version=prompt.rubrics.get().current_version)
        .order_by("position")
        .values_list("text", "points", "tags")
    )
    assert stored == [(r["criterion"], r["points"], r["tags"]) for r in first["rubrics"]]
    assert prompt.messages == first["prompt"]

    again = prompt_services.data_import(project=project, path=healthbench_path)
    assert again.ok and not again.changed
    assert again.prompts_unchanged == 250 and again.rubrics_unchanged == 250
    assert again.prompts_created == again.criteria_created == 0
    assert Criterion.objects.filter(version__rubric__project=project).count() == 2955


def test_one_malformed_line_imports_nothing_and_is_named(project, tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl", [HB_ROW, HB_ROW | {"prompt_id": "b"}, '{"prompt": [', HB_ROW]
    )
    report = prompt_services.data_import(project=project, path=path, fmt="healthbench")
    assert not report.ok and report.error_count == 1
    assert report.errors[0]["line"] == 3 and "JSON" in report.errors[0]["reason"]
    assert report.prompts_created == 0
    assert Prompt.objects.count() == 0 and Criterion.objects.count() == 0


def test_every_bad_line_is_reported_up_to_fifty(project, tmp_path):
    rows = [HB_ROW] + ["not json"] * 60
    report = prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "b.jsonl", rows), fmt="healthbench"
    )
    assert report.error_count == 60 and len(report.errors) == 50
    assert [e["line"] for e in report.errors[:3]] == [2, 3, 4]


def test_conflicting_prompt_id_is_an_error(project, tmp_path):
    prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "a.jsonl", [HB_ROW | {"prompt_id": "x"}])
    )
    other = HB_ROW | {"prompt_id": "x", "prompt": [{"role": "user", "content": "Different"}]}
    report = prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "b.jsonl", [other])
    )
    assert not report.ok and "different messages" in report.errors[0]["reason"]


def test_hh_rlhf_creates_responses_and_a_preference_label(project, tmp_path):
    row = {
        "chosen": "\n\nHuman: How do I boil an egg?\n\nAssistant: Put it in boiling water for 9 minutes.",
        "rejected": "\n\nHuman: How do I boil an egg?\n\nAssistant: Eggs cannot be boiled.",
    }
    path = write_jsonl(tmp_path / "hh.jsonl", [row])
    report = prompt_services.data_import(project=project, path=path)
    assert report.ok and report.format == "hh-rlhf"
    assert report.responses_created == 2 and report.preference_labels_created == 1
    label = PreferenceLabel.objects.get()
    assert label.chosen.content.startswith("Put it in") and label.rejected.content.startswith(
        "Eggs"
    )
    assert label.prompt.messages == [{"role": "user", "content": "How do I boil an egg?"}]
    again = prompt_services.data_import(project=project, path=path)
    assert again.ok and not again.changed and again.preference_labels_unchanged == 1
    assert Response.objects.count() == 2


def test_gzipped_generic_file(project, tmp_path):
    path = tmp_path / "g.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(
            json.dumps({"id": "q1", "prompt": "Explain TCP.", "responses": ["It is a protocol."]})
            + "\n"
        )
    report = prompt_services.data_import(project=project, path=path)
    assert report.ok and report.prompts_created == 1 and report.responses_created == 1


def test_unknown_format_is_a_clear_error(project, tmp_path):
    path = write_jsonl(tmp_path / "odd.jsonl", [{"foo": 1}])
    with pytest.raises(ApplicationError, match="odd.jsonl"):
        prompt_services.data_import(project=project, path=path)


def test_command_json_report_and_exit_codes(project, tmp_path, healthbench_path, capsys):
    call_command(
        "import_data", str(healthbench_path), "--project", "new-proj", "--create-project", "--json"
    )
    report = json.loads(capsys.readouterr().out)
    for key in (
        "prompts_created",
        "prompts_unchanged",
        "responses_created",
        "rubrics_created",
        "criteria_created",
        "preference_labels_created",
        "errors",
    ):
        assert key in report
    assert report["prompts_created"] == 250 and report["criteria_created"] == 2955
    call_command("import_data", str(healthbench_path), "--project", "new-proj", "--json")
    assert json.loads(capsys.readouterr().out)["unchanged"] is True

    bad = write_jsonl(tmp_path / "bad.jsonl", [HB_ROW, "{oops"])
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_data", str(bad), "--project", "fresh", "--create-project", "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["errors"][0]["line"] == 2
    assert not Project.objects.filter(slug="fresh").exists()
    with pytest.raises(CommandError, match="No project"):
        call_command("import_data", str(bad), "--project", "missing")


def test_import_page_shows_a_report(client, project, editor):
    client.force_login(editor)
    upload = io.BytesIO(json.dumps(HB_ROW).encode() + b"\n")
    upload.name = "one.jsonl"
    url = reverse("annotation:import", args=[project.slug])
    response = client.post(url, {"file": upload, "format": ""}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "Imported" in html and "healthbench" in html
    assert Criterion.objects.count() == 2
    upload = io.BytesIO(b'{"prompt": [\n')
    upload.name = "broken.jsonl"
    html = client.post(url, {"file": upload, "format": "healthbench"}).content.decode()
    assert "Nothing imported" in html and '<td class="num">1</td>' in html


def test_import_api(api, project, editor):
    api.force_authenticate(editor)
    url = f"/api/projects/{project.slug}/import/"
    upload = io.BytesIO(json.dumps(HB_ROW).encode() + b"\n")
    upload.name = "one.jsonl"
    created = api.post(url, {"file": upload}, format="multipart")
    assert created.status_code == 201 and created.json()["criteria_created"] == 2
    upload.seek(0)
    assert api.post(url, {"file": upload}, format="multipart").status_code == 200
    bad = io.BytesIO(b"{nope\n")
    bad.name = "bad.jsonl"
    response = api.post(url, {"file": bad, "format": "healthbench"}, format="multipart")
    assert response.status_code == 400 and response.json()["errors"][0]["line"] == 1


def test_import_page_htmx_file_error_renders_in_the_report(client, project, editor, tmp_path):
    client.force_login(editor)
    upload = io.BytesIO(b'{"foo": 1}\n')
    upload.name = "odd.jsonl"
    url = reverse("annotation:import", args=[project.slug])
    html = client.post(url, {"file": upload}, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in html and 'id="report"' in html
    assert "odd.jsonl" in html and "Nothing imported" in html
    assert Prompt.objects.count() == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"prompt": "hi", "metadata": {"score": NaN}}', "NaN is not a valid number"),
        ('{"prompt": "nul \\u0000 byte"}', "NUL character"),
        (
            '{"prompt": "hi", "rubric": [{"criterion": "x", "points": 1' + "0" * 400 + "}]}",
            "too large",
        ),
    ],
)
def test_values_the_database_cannot_store_are_reported_not_crashed(project, tmp_path, line, reason):
    path = write_jsonl(tmp_path / "g.jsonl", ['{"prompt": "fine"}', line])
    report = prompt_services.data_import(project=project, path=path, fmt="generic")
    assert not report.ok and report.errors[0]["line"] == 2
    assert reason in report.errors[0]["reason"]
    assert Prompt.objects.count() == 0


def test_error_after_written_records_rolls_everything_back(project, tmp_path):
    rows = [HB_ROW | {"prompt_id": f"p{i}"} for i in range(5)] + ['{"prompt": "x"}']
    report = prompt_services.data_import(
        project=project, path=write_jsonl(tmp_path / "h.jsonl", rows), fmt="healthbench"
    )
    assert not report.ok and report.errors[0]["line"] == 6
    assert Prompt.objects.count() == 0 and Rubric.objects.count() == 0


def test_json_array_file_and_broken_array(project, tmp_path):
    good = tmp_path / "rqa.json"
    good.write_text(
        json.dumps(
            [
                {
                    "id": "r1",
                    "query": "What limits CRISPR?",
                    "rubric": [
                        {"rubric_item": "Mentions off-target effects", "type": ["limitation"]}
                    ],
                }
            ]
        )
    )
    report = prompt_services.data_import(project=project, path=good)
    assert report.ok and report.format == "researchqa" and report.criteria_created == 1
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "r2", "query": "q"},')
    with pytest.raises(ApplicationError, match="broken.json"):
        prompt_services.data_import(project=project, path=broken)


def test_a_source_named_like_a_judge_probes_copies_is_refused(project, tmp_path):
    rows = [
        {"prompt": "How do I treat a cold?", "response": "Rest.", "source": "model-a"},
        {"prompt": "And a cough?", "response": "Honey.", "source": "probe:padding"},
    ]
    path = write_jsonl(tmp_path / "probe.jsonl", rows)
    report = prompt_services.data_import(project=project, path=path, fmt="generic")
    assert not report.ok and report.errors[0]["line"] == 2
    assert (
        "probe:" in report.errors[0]["reason"] and "rename the source" in report.errors[0]["reason"]
    )
    assert Response.objects.count() == 0
