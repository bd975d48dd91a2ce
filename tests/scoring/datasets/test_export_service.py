"""Exports as jobs: created, run (eagerly, the worker's code path), files recorded with
their sha256 and byte-identical when repeated; failures leave no files; redelivery changes
nothing; the page, the API and the command, with the outsider's 404 everywhere."""

from __future__ import annotations

import hashlib
import json
from io import StringIO

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.projects import services as project_services
from annotation.prompts import services as prompt_services
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Rubric
from annotation.rubrics.services import CriterionInput
from scoring.datasets import services as export_services
from scoring.datasets import writers
from scoring.datasets.models import Export
from scoring.datasets.options import ExportOptions
from tests.factories import PromptFactory, ResponseFactory


@pytest.fixture(autouse=True)
def media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def healthbench(project, owner, reviewer, healthbench_path):  # type: ignore[no-untyped-def]
    """The HealthBench sample with 30 of its 250 rubrics approved."""
    prompt_services.data_import(project=project, path=healthbench_path)
    for rubric in Rubric.objects.filter(project=project).order_by("pk")[:30]:
        rubric_workflow.rubric_submit_for_review(rubric=rubric, actor=owner)
        rubric_workflow.rubric_review(rubric=rubric, actor=reviewer, decision="approve")
    return project


@pytest.fixture
def small(project, owner):  # type: ignore[no-untyped-def]
    """Six prompts, each with a two-criterion rubric (latest versions, none approved) and
    two responses."""
    for i in range(6):
        prompt = PromptFactory(
            project=project,
            external_id=f"case-{i}",
            messages=[{"role": "user", "content": f"My child has a fever of 39.{i} C. What now?"}],
        )
        rubric_services.rubric_create(
            project=project,
            prompt=prompt,
            title=f"case {i}",
            author=owner,
            criteria=[
                CriterionInput(text="Asks about the child's age", points=5),
                CriterionInput(text="Recommends aspirin for a child", points=-8),
            ],
        )
        for source in ("model-a", "model-b"):
            ResponseFactory(prompt=prompt, source=source, content=f"{source} on case {i}")
    return project


def run_export(eager, project, actor, **options):  # type: ignore[no-untyped-def]
    export = eager(
        lambda: export_services.export_create(
            project=project, actor=actor, options=ExportOptions(**options)
        )
    )
    export.refresh_from_db()
    return export


def sha256(path) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the service --------------------------------------------------------------------------


def test_an_export_writes_its_files_and_records_their_sha256(healthbench, editor, eager):  # type: ignore[no-untyped-def]
    export = run_export(
        eager, healthbench, editor, kind="rl_verl", format="parquet", ratios=(0.8, 0.1, 0.1)
    )
    assert export.status == Export.Status.DONE, export.error
    assert export.finished_at and export.started_at and export.studio_version
    names = [f["name"] for f in export.files]
    assert names == ["train.parquet", "validation.parquet", "test.parquet", "README.md"]
    assert export.rows_total == export.rows_done == 30 == sum(f["rows"] for f in export.files)
    directory = export_services.export_directory(export.pk)
    for f in export.files:
        path = directory / f["name"]
        assert sha256(path) == f["sha256"] and path.stat().st_size == f["bytes"]
    train = pq.read_table(directory / "train.parquet")
    assert train.num_rows == export.files[0]["rows"] > 15
    row = train.slice(0, 1).to_pylist()[0]
    assert row["reward_model"]["style"] == "rubric" and row["extra_info"]["split"] == "train"
    card = (directory / "README.md").read_text()
    assert "studio_version" in card and "| train |" in card
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]


def test_the_same_export_twice_is_byte_identical(healthbench, editor, owner, eager):  # type: ignore[no-untyped-def]
    options = {
        "kind": "rl_healthbench",
        "format": "hf",
        "versions": "latest",
        "ratios": (0.8, 0.1, 0.1),
        "license": "cc-by-4.0",
        "exclude": ("some benchmark prompt text",),
    }
    first = run_export(eager, healthbench, editor, **options)
    second = run_export(eager, healthbench, owner, **options)
    assert first.pk != second.pk and first.status == second.status == Export.Status.DONE
    assert first.files == second.files
    assert first.rows_total == 250
    # the card names the exclusion list by its size and hash, never its texts
    card = (export_services.export_directory(first.pk) / "README.md").read_text()
    assert "some benchmark prompt text" not in card and "exclusions_sha256" in card


SOURCES = {
    "healthbench.jsonl": {
        "prompt_id": "hb-1",
        "prompt": [{"role": "user", "content": "My ankle is swollen after a fall."}],
        "rubrics": [{"criterion": "Advises rest, ice and elevation", "points": 5,
                     "tags": ["axis:accuracy"]}],
        "example_tags": ["theme:emergency_referrals"],
        "canary": "healthbench-canary",
        "ideal_completions_data": {"ideal_completion": "Rest it.", "ideal_completions_group": "g1",
                                   "ideal_completions_ref_completions": []},
    },
    "researchqa.jsonl": {
        "id": "rqa-1",
        "query": "What limits CRISPR off-target detection?",
        "rubric": [{"rubric_item": "Cites a GUIDE-seq study", "type": "citation"}],
        "citation_metadata": {"doi": "10.1038/nbt.3117", "year": 2015, "score": 0.5},
        "field": "biology",
    },
    "rar.jsonl": {
        "id": "rar-1",
        "question": "Which vitamin deficiency causes scurvy?",
        "rubric": [{"title": "Names it", "description": "Essential Criteria: Names vitamin C",
                    "weight": 5}],
        "reference_answer": "Vitamin C.",
        "question_source": "medqa",
    },
}  # fmt: skip


@pytest.fixture
def with_metadata(project, tmp_path):  # type: ignore[no-untyped-def]
    """One HealthBench, one ResearchQA and one RaR record, each with fields of its own
    that have no column (kept in the prompt's metadata by the importer)."""
    for name, record in SOURCES.items():
        path = tmp_path / name
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        report = prompt_services.data_import(project=project, path=path)
        assert not report.errors, report.errors
    return project


def _lines(path) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {row["prompt_id"]: row for row in rows}


def test_the_source_records_other_fields_come_back(with_metadata, editor, eager):  # type: ignore[no-untyped-def]
    hb = run_export(eager, with_metadata, editor, kind="rl_healthbench", versions="latest")
    lines = _lines(export_services.export_directory(hb.pk) / "train.jsonl")
    assert lines["hb-1"]["canary"] == "healthbench-canary"
    assert lines["hb-1"]["example_tags"] == ["theme:emergency_referrals"]
    assert lines["hb-1"]["ideal_completions_data"] == {"ideal_completions_group": "g1"}
    assert lines["hb-1"]["ideal_completion"] == "Rest it."
    assert lines["rqa-1"]["citation_metadata"] == SOURCES["researchqa.jsonl"]["citation_metadata"]
    assert lines["rqa-1"]["field"] == "biology"
    assert "metadata" not in lines["hb-1"] and "metadata" not in lines["rqa-1"]
    card = (export_services.export_directory(hb.pk) / "README.md").read_text()
    assert "top-level fields of each line" in card

    rar = run_export(eager, with_metadata, editor, kind="rl_rar", versions="latest")
    lines = _lines(export_services.export_directory(rar.pk) / "train.jsonl")
    assert lines["rar-1"]["question_source"] == "medqa"
    assert lines["rar-1"]["rubric"] == [
        {"title": "Names it", "description": "Essential Criteria: Names vitamin C", "weight": 5}
    ]

    verl = run_export(eager, with_metadata, editor, kind="rl_verl", format="parquet",
                      versions="latest")  # fmt: skip
    table = pq.read_table(export_services.export_directory(verl.pk) / "train.parquet")
    infos = {r["extra_info"]["prompt_id"]: r["extra_info"] for r in table.to_pylist()}
    prompts = {p.external_id: p for p in with_metadata.prompts.all()}
    assert set(infos) == {"hb-1", "rqa-1", "rar-1"}
    for prompt_id, info in infos.items():
        assert json.loads(info["metadata"]) == prompts[prompt_id].metadata
    assert json.loads(infos["rqa-1"]["metadata"])["citation_metadata"]["year"] == 2015

    parquet = run_export(eager, with_metadata, editor, kind="rl_healthbench", format="parquet",
                         versions="latest")  # fmt: skip
    table = pq.read_table(export_services.export_directory(parquet.pk) / "train.parquet")
    column = {r["prompt_id"]: json.loads(r["metadata"]) for r in table.to_pylist()}
    assert column["hb-1"]["canary"] == "healthbench-canary"


def test_rubric_item_fields_follow_their_criteria_through_edits_and_a_round_trip(  # type: ignore[no-untyped-def]
    project, editor, eager, tmp_path
):
    """Per-item fields (HealthBench item ids, ResearchQA ``citation_metadata``) come back
    inside their own items after the rubric was edited (one item deleted, two swapped), and
    the exported file imports again with the same texts, points and item fields."""
    cited = {"doi": "10.1038/nbt.3117", "year": 2015}
    records = [
        {"prompt_id": "hb-2", "prompt": [{"role": "user", "content": "Dizzy when standing."}],
         "rubrics": [{"criterion": " Asks about fluids", "points": 5, "tags": [], "id": "i-1"},
                     {"criterion": "Mentions orthostatic hypotension", "points": 7, "tags": [],
                      "id": "i-2"},
                     {"criterion": "Suggests a CT scan first", "points": -4, "tags": [],
                      "id": "i-3"}]},
        {"id": "rqa-2", "query": "How are CRISPR off-targets found?",
         "rubric": [{"rubric_item": "Cites GUIDE-seq", "type": "citation",
                     "citation_metadata": cited}]},
    ]  # fmt: skip
    for i, record in enumerate(records):
        path = tmp_path / f"source-{i}.jsonl"
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        assert not prompt_services.data_import(project=project, path=path).errors
    rubric = Rubric.objects.get(prompt__external_id="hb-2")
    first, second, third = rubric.current_version.criteria.order_by("position")
    rubric_services.rubric_version_create(
        rubric=rubric, author=editor, base_number=1,
        criteria=[CriterionInput(text=c.text, points=c.points, category=c.category,
                                 kind=c.kind, tags=c.tags, key=c.key) for c in (third, first)]
        + [CriterionInput(text="Asks about new medicines", points=3)],
    )  # fmt: skip

    done = run_export(eager, project, editor, kind="rl_healthbench", versions="latest")
    exported = export_services.export_directory(done.pk) / "train.jsonl"
    lines = _lines(exported)
    assert lines["hb-2"]["rubrics"] == [
        {"criterion": "Suggests a CT scan first", "points": -4, "tags": [], "id": "i-3"},
        {"criterion": " Asks about fluids", "points": 5, "tags": [], "id": "i-1"},
        {"criterion": "Asks about new medicines", "points": 3, "tags": []},
    ]
    assert lines["rqa-2"]["rubrics"][0]["citation_metadata"] == cited
    assert "rubric_items" not in lines["hb-2"] and "rubric_items" not in lines["rqa-2"]

    other = project_services.project_create(name="Again", slug="again", owner=editor)
    report = prompt_services.data_import(project=other, path=exported, fmt="healthbench")
    assert not report.errors, report.errors
    for prompt_id, line in lines.items():
        prompt = other.prompts.get(external_id=prompt_id)
        again = Rubric.objects.get(prompt=prompt).current_version.criteria.order_by("position")
        assert [(c.text, c.points) for c in again] == [
            (item["criterion"], item["points"]) for item in line["rubrics"]
        ]
    hb = other.prompts.get(external_id="hb-2").metadata["rubric_items"]
    assert hb == [{"id": "i-3"}, {"id": "i-1"}, {}]
    assert other.prompts.get(external_id="rqa-2").metadata["rubric_items"] == [
        {"citation_metadata": cited}
    ]


def test_preference_cards_say_how_pairs_were_made(small, editor, eager):  # type: ignore[no-untyped-def]
    from annotation.prompts.models import PreferenceLabel

    for prompt in small.prompts.all():
        a, b = prompt.responses.order_by("source")
        PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b)
        PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b, source="expert")
    export = run_export(eager, small, editor, kind="preferences", versions="latest")
    assert export.status == Export.Status.DONE and export.rows_total == 6
    card = (export_services.export_directory(export.pk) / "README.md").read_text()
    assert "6 repeated pairs were folded into another row" in card
    assert "There is no `margin` column" in card and "a null margin crashes" in card
    lines = _lines(export_services.export_directory(export.pk) / "train.jsonl")
    assert all(r["origin"] == "expert" and r["also_from"] == ["dataset"] for r in lines.values())


def test_a_failing_export_ends_failed_with_its_message_and_no_files(  # type: ignore[no-untyped-def]
    small, editor, eager, monkeypatch
):
    def broken(directory, rows, schema, fmt, **kwargs):  # type: ignore[no-untyped-def]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "train.jsonl").write_text("half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers, "write_export", broken)
    export = run_export(eager, small, editor, kind="rl_verl", versions="latest")
    assert export.status == Export.Status.FAILED
    assert "No space left on device" in export.error
    assert export.files == [] and export.finished_at
    assert not export_services.export_directory(export.pk).exists()


def test_nothing_to_export_is_a_failure_that_says_why(small, editor, eager):  # type: ignore[no-untyped-def]
    export = run_export(eager, small, editor, kind="rl_verl")  # no rubric is approved
    assert export.status == Export.Status.FAILED
    assert "approved" in export.error and "latest" in export.error
    assert not export_services.export_directory(export.pk).exists()


def test_redelivery_changes_nothing(small, editor, eager):  # type: ignore[no-untyped-def]
    export = run_export(eager, small, editor, kind="rl_rar", versions="latest")
    assert export.status == Export.Status.DONE
    path = export_services.export_directory(export.pk) / "train.jsonl"
    before = (path.stat().st_mtime_ns, Export.objects.filter(pk=export.pk).values().get())
    export_services.export_run(export.pk)  # the task delivered again
    assert (path.stat().st_mtime_ns, Export.objects.filter(pk=export.pk).values().get()) == before
    # a job another worker holds is left alone too
    running = Export.objects.create(
        project=small, kind="rl_rar", format="jsonl", status=Export.Status.RUNNING
    )
    export_services.export_run(running.pk)
    running.refresh_from_db()
    assert running.status == Export.Status.RUNNING and running.files == []
    assert not export_services.export_directory(running.pk).exists()


def test_progress_is_written_as_rows_go_by(small, monkeypatch):  # type: ignore[no-untyped-def]
    export = Export.objects.create(
        project=small, kind="rl_verl", format="jsonl", status=Export.Status.RUNNING
    )
    monkeypatch.setattr(export_services, "PROGRESS_SECONDS", 3600)
    progress = export_services._Progress(export.pk)
    progress(1000)
    assert Export.objects.get(pk=export.pk).rows_done == 0  # throttled
    progress(export_services.PROGRESS_ROWS)
    assert Export.objects.get(pk=export.pk).rows_done == export_services.PROGRESS_ROWS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "rl_ppo"}, "Unknown export kind"),
        ({"kind": "rl_verl", "format": "csv"}, "Unknown format"),
        ({"kind": "rl_verl", "ratios": (0.8, 0.1, 0.2)}, "adding up to 1"),
        ({"kind": "rl_verl", "since": "last week"}, "not a date"),
        ({"kind": "rl_verl", "since": "2026-02-01", "until": "2026-01-01"}, "wrong order"),
        ({"kind": "preferences", "origins": ()}, "origins"),
    ],
)
def test_bad_options_are_refused_before_anything_is_queued(small, editor, options, message):  # type: ignore[no-untyped-def]
    with pytest.raises(ApplicationError, match=message):
        export_services.export_create(project=small, actor=editor, options=ExportOptions(**options))
    assert not Export.objects.exists()


def test_deleting_an_export_removes_its_files(  # type: ignore[no-untyped-def]
    small, owner, editor, client, eager, django_capture_on_commit_callbacks
):
    export = run_export(eager, small, editor, kind="rl_verl", versions="latest")
    directory = export_services.export_directory(export.pk)
    assert directory.is_dir()
    url = reverse("scoring:export_delete", args=[small.slug, export.pk])
    client.force_login(editor)
    assert client.post(url).status_code == 403
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
    assert not Export.objects.filter(pk=export.pk).exists() and not directory.exists()


# --- the page -------------------------------------------------------------------------------


def test_page_permissions(small, personas, client, eager):  # type: ignore[no-untyped-def]
    export = run_export(eager, small, personas["editor"], kind="rl_verl", versions="latest")
    page = reverse("scoring:exports", args=[small.slug])
    card = reverse("scoring:export", args=[small.slug, export.pk])
    download = reverse("scoring:export_file", args=[small.slug, export.pk, "train.jsonl"])
    delete = reverse("scoring:export_delete", args=[small.slug, export.pk])

    client.force_login(personas["outsider"])
    for url in (page, card, download):
        assert client.get(url).status_code == 404
    for url in (page, delete):
        assert client.post(url, {"kind": "rl_verl"}).status_code == 404

    client.force_login(personas["viewer"])
    html = client.get(page).content.decode()
    assert download in html and export.files[0]["sha256"] in html
    assert 'id="export-form"' not in html and "Delete</button>" not in html
    response = client.get(download)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert "alpha-export-" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == export.files[0]["sha256"]
    assert client.post(page, {"kind": "rl_verl"}).status_code == 403
    assert client.post(delete).status_code == 403
    hx = client.get(card, headers={"HX-Request": "true"})
    assert hx.status_code == 200 and f'id="export-{export.pk}"' in hx.content.decode()
    assert client.get(card).status_code == 302  # a plain visit goes to the page

    client.force_login(personas["editor"])
    assert 'id="export-form"' in client.get(page).content.decode()
    form = {"kind": "rl_healthbench", "format": "parquet", "versions": "latest", "train": "0.5",
            "validation": "0.25", "test": "0.25", "tags": "", "exclude": "case-0\n\ncase-1\n",
            "origins": ["dataset"], "conversational": "1", "license": "cc-by-4.0"}  # fmt: skip
    response = eager(lambda: client.post(page, form))
    assert response.status_code == 302
    created = Export.objects.latest("pk")
    assert created.created_by == personas["editor"] and created.status == Export.Status.DONE
    assert created.rows_total == 4  # six prompts, two excluded
    assert created.options["ratios"] == [0.5, 0.25, 0.25]
    assert created.options["exclude"] == ["case-0", "case-1"]


def test_page_form_errors_are_shown_and_nothing_is_created(small, editor, client):  # type: ignore[no-untyped-def]
    client.force_login(editor)
    page = reverse("scoring:exports", args=[small.slug])
    response = client.post(page, {"kind": "rl_verl", "train": "0.9", "validation": "x"})
    html = response.content.decode()
    assert response.status_code == 200 and 'id="export-error"' in html
    assert "must be a number" in html and not Export.objects.exists()
    response = client.post(page, {"kind": "rl_verl", "train": "0.9", "validation": "0.2"})
    assert "adding up to 1" in response.content.decode() and not Export.objects.exists()


def test_the_page_asks_for_margins_explicitly(small, editor, client, eager):  # type: ignore[no-untyped-def]
    client.force_login(editor)
    page = reverse("scoring:exports", args=[small.slug])
    html = client.get(page).content.decode()
    assert 'name="margins"' in html and "checked" not in html.split('name="margins"')[1][:40]
    form = {"kind": "preferences", "format": "jsonl", "train": "1", "origins": ["dataset"],
            "margins": "1"}  # fmt: skip
    response = client.post(page, form)
    assert response.status_code == 200 and not Export.objects.exists()
    assert "Margins come from the rubric judge" in response.content.decode()
    form["origins"] = ["dataset", "judge"]
    assert eager(lambda: client.post(page, form)).status_code == 302
    assert Export.objects.get().options["margins"] is True
    del form["margins"]
    eager(lambda: client.post(page, form))
    assert Export.objects.latest("pk").options["margins"] is False
    html = client.get(page).content.decode()
    assert "with margins" in html


def test_the_page_polls_an_unfinished_export(small, viewer, client):  # type: ignore[no-untyped-def]
    export = Export.objects.create(
        project=small, kind="rl_verl", format="jsonl", status=Export.Status.RUNNING,
        rows_total=6, rows_done=2,
    )  # fmt: skip
    client.force_login(viewer)
    html = client.get(reverse("scoring:exports", args=[small.slug])).content.decode()
    assert 'hx-trigger="every 1s"' in html and "2 rows written" in html
    assert reverse("scoring:export", args=[small.slug, export.pk]) in html


def test_the_page_shows_exports_newest_first_twenty_a_page(small, viewer, client):  # type: ignore[no-untyped-def]
    from scoring.datasets.views import EXPORTS_PER_PAGE

    made = [
        Export.objects.create(project=small, kind="rl_verl", format="jsonl").pk
        for _ in range(EXPORTS_PER_PAGE + 3)
    ]
    client.force_login(viewer)
    page = reverse("scoring:exports", args=[small.slug])
    first = client.get(page)
    assert [e.pk for e in first.context["exports"]] == made[::-1][:EXPORTS_PER_PAGE]
    html = first.content.decode()
    assert f"Page 1 of 2 ({len(made)} exports)" in html and 'href="?page=2">Older' in html
    second = client.get(page, {"page": 2})
    assert [e.pk for e in second.context["exports"]] == made[2::-1]
    assert 'href="?page=1">← Newer' in second.content.decode()


@pytest.mark.parametrize(
    "name",
    ["../../../etc/passwd", "..%2F..%2Fsettings.py", "/etc/passwd", "README.md/../train.jsonl",
     "train.jsonl/", ".", "nope.jsonl"],
)  # fmt: skip
def test_path_traversal_in_a_download_name_is_404(small, viewer, client, api, eager, name):  # type: ignore[no-untyped-def]
    export = run_export(eager, small, viewer, kind="rl_verl", versions="latest")
    client.force_login(viewer)
    api.force_authenticate(viewer)
    base = f"/p/{small.slug}/exports/{export.pk}/files/"
    api_base = f"/api/projects/{small.slug}/exports/{export.pk}/files/"
    assert client.get(base + name).status_code == 404
    assert api.get(api_base + name).status_code == 404
    with pytest.raises(Exception, match="No such file"):
        export_services.export_file(export, name)


def test_a_file_of_an_unfinished_export_is_404(small, viewer, client):  # type: ignore[no-untyped-def]
    export = Export.objects.create(
        project=small, kind="rl_verl", format="jsonl", status=Export.Status.FAILED,
        files=[{"name": "train.jsonl", "sha256": "0" * 64, "bytes": 1, "rows": 1}],
    )  # fmt: skip
    client.force_login(viewer)
    url = reverse("scoring:export_file", args=[small.slug, export.pk, "train.jsonl"])
    assert client.get(url).status_code == 404


# --- the API ---------------------------------------------------------------------------------


def test_api_permissions_create_progress_and_download(small, personas, api, eager):  # type: ignore[no-untyped-def]
    base = f"/api/projects/{small.slug}/exports/"
    api.force_authenticate(personas["outsider"])
    assert api.get(base).status_code == 404
    assert api.post(base, {"kind": "rl_verl"}, format="json").status_code == 404

    api.force_authenticate(personas["editor"])
    body = {"kind": "preferences", "format": "jsonl", "versions": "latest",
            "ratios": [1, 0, 0], "origins": ["judge"], "min_margin": 0.5,
            "conversational": False, "since": "2020-01-01"}  # fmt: skip
    response = eager(lambda: api.post(base, body, format="json"))
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["status"] == "queued" and created["options"]["origins"] == ["judge"]
    assert created["options"]["since"] == "2020-01-01"
    detail = api.get(f"{base}{created['id']}/").json()
    assert detail["status"] == "failed" and "preference pair" in detail["error"]  # no pairs

    response = eager(
        lambda: api.post(base, {"kind": "judge_sft", "ratios": [0.5, 0.5]}, format="json")
    )
    assert response.status_code == 400 and "ratios" in response.json()
    response = api.post(base, {"kind": "rl_verl", "since": "2026-02-01", "until": "2026-01-01"},
                        format="json")  # fmt: skip
    assert response.status_code == 400 and "wrong order" in response.json()["detail"]

    response = eager(
        lambda: api.post(base, {"kind": "rl_verl", "versions": "latest"}, format="json")
    )
    export_id = response.json()["id"]

    api.force_authenticate(personas["viewer"])
    listed = api.get(base).json()["results"]
    assert [e["id"] for e in listed][0] == export_id
    detail = api.get(f"{base}{export_id}/").json()
    assert detail["status"] == "done" and detail["rows_total"] == detail["rows_done"] == 6
    train = detail["files"][0]
    assert train["name"] == "train.jsonl" and train["url"].endswith(
        f"{base}{export_id}/files/train.jsonl"
    )
    download = api.get(train["url"], HTTP_ACCEPT="application/octet-stream")
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    content = b"".join(download.streaming_content)
    assert hashlib.sha256(content).hexdigest() == train["sha256"]
    assert len(content.decode().splitlines()) == 6
    assert api.post(base, {"kind": "rl_verl"}, format="json").status_code == 403
    assert api.delete(f"{base}{export_id}/").status_code == 403
    missing = api.get(f"{base}{export_id}/files/nope.jsonl", HTTP_ACCEPT="application/octet-stream")
    assert missing.status_code == 404 and b"No such file" in missing.content

    api.force_authenticate(personas["outsider"])
    assert api.get(f"{base}{export_id}/").status_code == 404
    assert api.get(train["url"]).status_code == 404
    assert api.delete(f"{base}{export_id}/").status_code == 404

    api.force_authenticate(personas["owner"])
    assert eager(lambda: api.delete(f"{base}{export_id}/")).status_code == 204
    assert not export_services.export_directory(export_id).exists()


def test_api_margins_option(small, editor, api, eager):  # type: ignore[no-untyped-def]
    base = f"/api/projects/{small.slug}/exports/"
    api.force_authenticate(editor)
    body = {"kind": "preferences", "origins": ["dataset"], "margins": True}
    response = api.post(base, body, format="json")
    assert response.status_code == 400 and "Margins come from" in response.json()["detail"]
    body["origins"] = ["dataset", "judge"]
    response = eager(lambda: api.post(base, body, format="json"))
    assert response.status_code == 201 and response.json()["options"]["margins"] is True
    response = eager(lambda: api.post(base, {"kind": "preferences"}, format="json"))
    assert response.json()["options"]["margins"] is False


def test_the_schema_names_the_export_endpoints(client, db):  # type: ignore[no-untyped-def]
    import yaml
    from openapi_spec_validator import validate

    spec = yaml.safe_load(client.get("/api/schema/").content)
    validate(spec)
    assert "/api/projects/{slug}/exports/" in spec["paths"]
    assert "/api/projects/{slug}/exports/{id}/files/{name}" in spec["paths"]


# --- the command --------------------------------------------------------------------------


def test_the_command_writes_the_files_and_prints_their_sha256(healthbench, tmp_path):  # type: ignore[no-untyped-def]
    excluded = healthbench.prompts.order_by("pk").first().external_id
    exclude_file = tmp_path / "benchmark-ids.txt"
    exclude_file.write_text(f"{excluded}\n\n")
    out, stdout = tmp_path / "out", StringIO()
    call_command(
        "export_dataset",
        "--project", healthbench.slug, "--kind", "rl_verl", "--format", "hf",
        "--out", str(out), "--split", "0.8,0.1,0.1", "--exclude-file", str(exclude_file),
        "--license", "cc-by-4.0", stdout=stdout,
    )  # fmt: skip
    export = Export.objects.get()
    assert export.status == Export.Status.DONE and export.created_by is None
    assert export.rows_total == 29  # the 30 approved, one excluded
    printed = stdout.getvalue()
    for f in export.files:
        assert sha256(out / f["name"]) == f["sha256"]
        assert f["sha256"] in printed and f["name"] in printed
    ids = [
        r["extra_info"]["prompt_id"]
        for name in ("train", "validation", "test")
        for r in pq.read_table(out / f"{name}.parquet").to_pylist()
    ]
    assert len(ids) == 29 and excluded not in ids
    assert "license: cc-by-4.0" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope"], "No project 'nope'"),
        (["--kind", "rl_ppo"], "Unknown export kind"),
        (["--format", "csv"], "Unknown format"),
        (["--split", "0.8,0.2"], "2 part"),
        (["--split", "a,b,c"], "three numbers"),
        (["--split", "0.8,0.1,0.2"], "adding up to 1"),
        (["--versions", "newest"], "approved"),
        (["--exclude-file", "/nonexistent/list.txt"], "Cannot read the exclusion file"),
        (["--since", "yesterday"], "not a date"),
        (["--kind", "preferences", "--margins"], "Margins come from the rubric judge"),
        (["--kind", "preferences", "--origins", "crowd"], "Label origins"),
        (["--kind", "preferences", "--min-margin", "big"], "--min-margin must be a number"),
    ],
)
def test_bad_command_options_are_clear_errors(small, tmp_path, args, message):  # type: ignore[no-untyped-def]
    defaults = {"--project": small.slug, "--kind": "rl_verl", "--format": "jsonl",
                "--out": str(tmp_path / "out")}  # fmt: skip
    argv = [a for k, v in defaults.items() if k not in args for a in (k, v)] + args
    with pytest.raises(CommandError, match=message):
        call_command("export_dataset", *argv)
    assert not Export.objects.exists()


def test_the_command_reports_a_failed_export(small, tmp_path):  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="failed: Nothing to export"):
        call_command(
            "export_dataset", "--project", small.slug, "--kind", "rl_verl", "--format", "jsonl",
            "--out", str(tmp_path / "out"),
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
    assert Export.objects.get().options["versions"] == "approved"


def test_the_command_exports_preference_pairs_with_its_options(small, tmp_path):  # type: ignore[no-untyped-def]
    from annotation.prompts.models import PreferenceLabel

    for prompt in small.prompts.all():
        a, b = prompt.responses.order_by("source")
        PreferenceLabel.objects.create(prompt=prompt, chosen=a, rejected=b, source="expert")
    out = tmp_path / "out"
    call_command(
        "export_dataset", "--project", small.slug, "--kind", "preferences", "--format",
        "jsonl", "--out", str(out), "--versions", "latest", "--origins", "expert",
        "--plain", stdout=StringIO(),
    )  # fmt: skip
    export = Export.objects.get()
    assert export.options["origins"] == ["expert"] and export.options["margins"] is False
    assert export.options["conversational"] is False
    lines = _lines(out / "train.jsonl")
    assert len(lines) == 6 and all(isinstance(r["chosen"], str) for r in lines.values())
    assert all("margin" not in r for r in lines.values())

    # With margins but no judge run, no pair has a margin: nothing is exported (never a
    # null margin), and the command says so.
    with pytest.raises(CommandError, match="Nothing to export"):
        call_command(
            "export_dataset", "--project", small.slug, "--kind", "preferences", "--format",
            "jsonl", "--out", str(tmp_path / "out2"), "--versions", "latest",
            "--origins", "expert,judge", "--margins", stdout=StringIO(),
        )  # fmt: skip
    assert Export.objects.latest("pk").options["margins"] is True
