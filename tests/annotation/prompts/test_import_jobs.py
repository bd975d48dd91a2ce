"""Large imports run in a worker: the request stores the upload and answers with a job
(202 on the API, a card that polls itself on the page), the worker reads, checks and
writes, the job shows its progress and then the report. Small files stay in the request."""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotation.heartbeat import Heartbeat
from annotation.projects.models import Project
from annotation.prompts import import_jobs, import_writing
from annotation.prompts import import_jobs as prompt_import_jobs
from annotation.prompts import services as import_services
from annotation.prompts.importers import formats
from annotation.prompts.models import ImportJob, Prompt
from tests.factories import ProjectFactory
from tests.workers import celery_worker


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": f"q{i}", "prompt": f"Question number {i}?"} for i in range(start, start + n)]


def jsonl(records: list[Any]) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def upload(data: bytes, name: str = "big.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


@pytest.fixture(autouse=True)
def _small_inline_threshold(settings, tmp_path):  # type: ignore[no-untyped-def]
    """Files over 1,000 bytes of data go to a worker (tasks run eagerly once sent)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMPORT_INLINE_MAX_BYTES = 1_000
    settings.CELERY_TASK_ALWAYS_EAGER = True


def stored_files(settings) -> list[Path]:  # type: ignore[no-untyped-def]
    folder = Path(settings.MEDIA_ROOT) / "imports"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_large_upload_is_a_job_on_the_api(
    api, project, editor, settings, django_capture_on_commit_callbacks
):
    api.force_authenticate(editor)
    with django_capture_on_commit_callbacks() as sent:
        response = api.post(
            f"/api/projects/{project.slug}/import/",
            {"file": upload(jsonl(rows(40)))},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "queued" and job["report"] is None and job["file"] == "big.jsonl"
    assert response["Location"] == job["url"] == f"/api/projects/alpha/imports/{job['id']}/"
    assert Prompt.objects.count() == 0 and len(stored_files(settings)) == 1
    assert api.get(job["url"]).json()["status"] == "queued"

    assert len(sent) == 1
    sent[0]()  # the transaction commits: the task is sent (and runs, eagerly)

    done = api.get(job["url"]).json()
    assert done["status"] == "done" and done["error"] == ""
    assert done["report"]["prompts_created"] == 40 and done["report"]["committed"] is True
    assert done["lines_read"] == 40 and done["finished_at"]
    assert Prompt.objects.filter(project=project).count() == 40
    assert stored_files(settings) == []


def test_a_large_upload_is_a_job_on_the_page_that_polls_until_the_report(
    client, project, editor, django_capture_on_commit_callbacks
):
    client.force_login(editor)
    url = reverse("annotation:import", args=[project.slug])
    with django_capture_on_commit_callbacks() as sent:
        data = {"file": upload(jsonl([*rows(30), "{oops"])), "skip_invalid": "1"}
        html = client.post(url, data, HTTP_HX_REQUEST="true").content.decode()
    job = ImportJob.objects.get()
    job_url = reverse("annotation:import_job", args=[project.slug, job.pk])
    assert "<html" not in html and 'id="report"' in html
    assert f'hx-get="{job_url}"' in html and 'hx-trigger="every 1s"' in html
    assert "Waiting for a worker" in html
    # the poll, before a worker took it
    html = client.get(job_url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in html and "<html" not in html

    sent[0]()

    html = client.get(job_url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in html  # finished: the card stops polling
    assert "Imported" in html and "Skipped 1 bad record" in html
    assert '<td class="num">31</td>' in html  # the bad line
    page = client.get(job_url).content.decode()  # without htmx: the Import page showing it
    assert "<html" in page and "Imported" in page and "Recent imports" in page
    assert Prompt.objects.count() == 30


def test_a_refused_import_reads_nothing_imported_in_the_list(
    client, project, editor, django_capture_on_commit_callbacks
):
    client.force_login(editor)
    url = reverse("annotation:import", args=[project.slug])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"file": upload(jsonl([*rows(30), "{oops"]))}, HTTP_HX_REQUEST="true")
    job = ImportJob.objects.get()
    assert job.status == "done" and job.wrote_nothing and Prompt.objects.count() == 0
    html = client.get(url).content.decode()
    listed = html[html.index('id="import-jobs"') :]
    assert "Nothing imported" in listed and ">Done<" not in listed
    assert "Uploads are limited to 256 MiB;" in html


def test_without_htmx_the_form_goes_to_the_jobs_page(client, project, editor):
    client.force_login(editor)
    response = client.post(
        reverse("annotation:import", args=[project.slug]), {"file": upload(jsonl(rows(40)))}
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:import_job", args=[project.slug, job.pk])


def test_a_small_file_stays_in_the_request_and_is_recorded(api, project, editor, settings):
    api.force_authenticate(editor)
    response = api.post(
        f"/api/projects/{project.slug}/import/",
        {"file": upload(jsonl(rows(3)), "small.jsonl")},
        format="multipart",
    )
    assert response.status_code == 201 and response.json()["prompts_created"] == 3
    job = ImportJob.objects.get()
    assert (job.status, job.file_name, job.stored_path) == ("done", "small.jsonl", "")
    assert stored_files(settings) == []


def test_a_small_gzip_holding_much_data_goes_to_a_worker(
    api, project, editor, django_capture_on_commit_callbacks
):
    data = gzip.compress(jsonl(rows(2_000)))
    assert len(data) < 20_000
    api.force_authenticate(editor)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/projects/{project.slug}/import/",
            {"file": upload(data, "many.jsonl.gz"), "format": "generic"},
            format="multipart",
        )
    assert response.status_code == 202
    assert api.get(response.json()["url"]).json()["report"]["prompts_created"] == 2_000


def test_a_job_that_fails_says_why_and_imports_nothing(
    api, client, project, editor, django_capture_on_commit_callbacks
):
    api.force_authenticate(editor)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/projects/{project.slug}/import/",
            {"file": upload(jsonl([{"unknown": "x" * 2_000}]), "odd.jsonl")},
            format="multipart",
        )
    job = api.get(response.json()["url"]).json()
    assert job["status"] == "failed" and job["report"] is None
    assert "odd.jsonl: cannot detect the format" in job["error"]
    assert "nothing was imported" in job["error"]
    client.force_login(editor)
    html = client.get(
        reverse("annotation:import_job", args=[project.slug, job["id"]]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Nothing imported" in html and "cannot detect the format" in html
    assert Prompt.objects.count() == 0


def test_jobs_keep_the_roles(api, client, project, personas, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = prompt_import_jobs.import_start(
            project=project, upload=upload(jsonl(rows(40))), actor=personas["editor"]
        )
    other = ProjectFactory(slug="beta")
    theirs = ImportJob.objects.create(project=other, file_name="b.jsonl", size=1)
    page = reverse("annotation:import_job", args=[project.slug, job.pk])
    endpoint = f"/api/projects/{project.slug}/imports/{job.pk}/"
    expected = {"outsider": 404, "viewer": 403, "reviewer": 403, "editor": 200, "owner": 200}
    for name, code in expected.items():
        client.force_login(personas[name])
        api.force_authenticate(personas[name])
        assert client.get(page).status_code == code, name
        assert api.get(endpoint).status_code == code, name
    # another project's job under this project's slug
    assert (
        client.get(reverse("annotation:import_job", args=[project.slug, theirs.pk])).status_code
        == 404
    )
    assert api.get(f"/api/projects/{project.slug}/imports/{theirs.pk}/").status_code == 404
    assert client.post(page).status_code == 405


def test_progress_is_on_the_job_while_it_runs(project, editor, monkeypatch, settings):
    """Reading and checking, with the lines read so far, then writing, then done."""
    monkeypatch.setattr(import_services, "PROGRESS_SECONDS", 0.0)
    job = prompt_import_jobs.import_start(
        project=project, upload=upload(jsonl(rows(60))), actor=editor
    )
    assert job.status == "queued"  # (its task is sent when the test's transaction commits)
    seen: list[tuple[str, int]] = []

    def record_state() -> None:
        job.refresh_from_db()
        seen.append((job.status, job.lines_read))

    parse = formats._PARSERS["generic"]
    write = import_writing._write_batch

    def parse_and_look(obj, line):  # type: ignore[no-untyped-def]
        if line == 50:
            record_state()
        return parse(obj, line)

    def write_and_look(**kwargs):  # type: ignore[no-untyped-def]
        if len(seen) == 1:
            record_state()
        return write(**kwargs)

    monkeypatch.setitem(formats._PARSERS, "generic", parse_and_look)
    monkeypatch.setattr(import_writing, "_write_batch", write_and_look)
    prompt_import_jobs.import_job_run(job.pk)

    job.refresh_from_db()
    assert seen == [("parsing", 49), ("writing", 60)]
    assert (job.status, job.lines_read, job.report["prompts_created"]) == ("done", 60, 60)
    assert stored_files(settings) == []
    prompt_import_jobs.import_job_run(job.pk)  # delivered again: claimed already, nothing happens
    assert Prompt.objects.count() == 60
    assert ImportJob.objects.get(pk=job.pk).finished_at == job.finished_at


def test_a_write_the_sweep_failed_meanwhile_is_rolled_back(project, editor, monkeypatch):
    """The write's last statement checks the job is still running: a job the recovery sweep
    failed while it wrote (its heartbeat looked dead) writes nothing and says why."""
    job = prompt_import_jobs.import_start(
        project=project, upload=upload(jsonl(rows(40))), actor=editor
    )
    write = import_writing._write_batch

    def write_after_the_sweep(**kwargs):  # type: ignore[no-untyped-def]
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.FAILED)
        return write(**kwargs)

    monkeypatch.setattr(import_writing, "_write_batch", write_after_the_sweep)
    prompt_import_jobs.import_job_run(job.pk)
    job.refresh_from_db()
    assert Prompt.objects.count() == 0
    assert job.status == "failed" and "the worker importing it stopped" in job.error


def test_the_sweep_fails_jobs_whose_worker_stopped_and_resends_lost_ones(
    project, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.prompts import tasks

    sent: list[tuple[int, ...]] = []
    monkeypatch.setattr(
        tasks.import_file, "apply_async", lambda args, queue=None: sent.append(tuple(args))
    )
    now = timezone.now()
    lease = import_jobs.LEASE

    def job(status: str, beat_age: timedelta | None, age: timedelta = timedelta(0)) -> ImportJob:
        folder = Path(settings.MEDIA_ROOT) / "imports" / f"{status}{len(ImportJob.objects.all())}"
        folder.mkdir(parents=True)
        (folder / "f.jsonl").write_text("{}\n")
        made = ImportJob.objects.create(
            project=project,
            file_name=f"{status}.jsonl",
            size=3,
            status=status,
            stored_path=str((folder / "f.jsonl").relative_to(settings.MEDIA_ROOT)),
            heartbeat_at=None if beat_age is None else now - beat_age,
        )
        ImportJob.objects.filter(pk=made.pk).update(created_at=now - age)
        return made

    dead = job("parsing", lease + timedelta(seconds=1))
    dead_writer = job("writing", None)
    alive = job("writing", lease - timedelta(seconds=1))
    lost = job("queued", lease + timedelta(seconds=1), age=lease * 2)
    waiting = job("queued", timedelta(seconds=5))
    forgotten = job("queued", lease * 2, age=import_jobs.QUEUE_TIMEOUT + lease)

    with django_capture_on_commit_callbacks(execute=True):
        assert import_jobs.import_jobs_sweep(now=now) == 4
    state = {j.pk: j for j in ImportJob.objects.all()}
    for failed in (dead, dead_writer):
        assert state[failed.pk].status == "failed" and state[failed.pk].stored_path == ""
        assert "the worker importing it stopped" in state[failed.pk].error
        assert state[failed.pk].finished_at == now
    assert "no worker took the import up" in state[forgotten.pk].error
    assert state[alive.pk].status == "writing" and state[waiting.pk].status == "queued"
    assert state[lost.pk].status == "queued" and state[lost.pk].heartbeat_at == now
    assert sent == [(lost.pk,)]
    left = sorted(p.parent.name for p in stored_files(settings))
    assert left == sorted(Path(j.stored_path).parent.name for j in (alive, lost, waiting))

    with django_capture_on_commit_callbacks(execute=True):  # a second sweep: nothing to do
        assert import_jobs.import_jobs_sweep(now=now) == 0
    assert sent == [(lost.pk,)]


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_only_while_the_job_runs():
    """From its own thread and connection, every interval, and only in the running states."""
    project = Project.objects.create(slug="beat", name="Beat")
    long_ago = timezone.now() - timedelta(days=1)
    jobs = [
        ImportJob.objects.create(
            project=project, file_name=status, size=1, status=status, heartbeat_at=long_ago
        )
        for status in ("writing", "done")
    ]
    running, done = jobs
    beats: set[object] = set()
    states = ("parsing", "writing")
    with (
        Heartbeat(ImportJob, done.pk, states, 0.01),
        Heartbeat(ImportJob, running.pk, states, 0.01) as beat,
    ):
        deadline = time.monotonic() + 60
        while len(beats) < 3 and time.monotonic() < deadline:  # two beats seen
            running.refresh_from_db()
            beats.add(running.heartbeat_at)
            time.sleep(0.01)
    assert len(beats) == 3 and not beat.is_alive()
    done.refresh_from_db()
    assert done.heartbeat_at == long_ago


@pytest.fixture
def unsent(settings, monkeypatch):  # type: ignore[no-untyped-def]
    """Jobs are not sent to the workers: the test runs them itself."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(import_jobs, "_send", lambda job_id: None)


@pytest.mark.django_db(transaction=True)
def test_a_running_import_beats_its_heartbeat(unsent, monkeypatch):
    monkeypatch.setattr(import_jobs, "HEARTBEAT", timedelta(milliseconds=10))
    project = Project.objects.create(slug="beat", name="Beat")
    job = prompt_import_jobs.import_start(
        project=project, upload=upload(jsonl(rows(40))), actor=None
    )
    parse = formats._PARSERS["generic"]
    beats: list[object] = []

    def parse_and_look(obj, line):  # type: ignore[no-untyped-def]
        if line == 1:  # the reading goes no further until the heartbeat moved on its own
            claimed = ImportJob.objects.get(pk=job.pk).heartbeat_at
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not beats:
                beat = ImportJob.objects.get(pk=job.pk).heartbeat_at
                if beat != claimed:
                    beats.append(beat)
                time.sleep(0.01)
        return parse(obj, line)

    monkeypatch.setitem(formats._PARSERS, "generic", parse_and_look)
    prompt_import_jobs.import_job_run(job.pk)
    job.refresh_from_db()
    assert beats, "no heartbeat while the file was read"
    assert job.status == "done" and Prompt.objects.filter(project=project).count() == 40


@pytest.mark.django_db(transaction=True)
def test_a_sweep_on_another_connection_during_the_write_leaves_nothing_written(unsent, monkeypatch):
    """The race as it happens: a worker's sweep (its own connection) fails the job while
    the job writes; the write's last statement sees it and everything rolls back."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: the sweep would wait for the write")
    project = Project.objects.create(slug="race", name="Race")
    job = prompt_import_jobs.import_start(
        project=project, upload=upload(jsonl(rows(40))), actor=None
    )
    write = import_writing._write_batch
    swept: list[int] = []

    def sweep_elsewhere() -> None:
        try:  # the job's heartbeat looks a lease old to this sweep
            swept.append(import_jobs.import_jobs_sweep(now=timezone.now() + import_jobs.LEASE * 2))
        finally:
            connection.close()

    def write_while_swept(**kwargs):  # type: ignore[no-untyped-def]
        if not swept:
            sweeper = threading.Thread(target=sweep_elsewhere)
            sweeper.start()
            sweeper.join()
        return write(**kwargs)

    monkeypatch.setattr(import_writing, "_write_batch", write_while_swept)
    prompt_import_jobs.import_job_run(job.pk)
    job.refresh_from_db()
    assert swept == [1]
    assert job.status == "failed" and "the worker importing it stopped" in job.error
    assert Prompt.objects.filter(project=project).count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_sweep_at_the_moment_of_commit_waits_for_it_and_leaves_the_job_alone(unsent, monkeypatch):
    """The write's last statement takes the job's row: a sweep that comes after it waits for
    the commit, then finds the heartbeat fresh and changes nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: the sweep would wait for the write")
    project = Project.objects.create(slug="commit", name="Commit")
    job = prompt_import_jobs.import_start(
        project=project, upload=upload(jsonl(rows(40))), actor=None
    )
    swept: list[int] = []

    def sweep_elsewhere() -> None:
        try:
            swept.append(import_jobs.import_jobs_sweep(now=timezone.now() + import_jobs.LEASE * 2))
        finally:
            connection.close()

    sweeper = threading.Thread(target=sweep_elsewhere)

    def sweep_waits_on_the_row() -> bool:
        with connection.cursor() as cursor:
            # inside a transaction PostgreSQL keeps its first view of pg_stat_activity
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return cursor.fetchone()[0] > 0

    original = import_jobs.data_import

    def data_import(**kwargs):  # type: ignore[no-untyped-def]
        check = kwargs["before_commit"]

        def check_then_sweep() -> None:
            check()
            sweeper.start()
            deadline = time.monotonic() + 60
            while sweeper.is_alive() and not sweep_waits_on_the_row():
                assert time.monotonic() < deadline
                time.sleep(0.01)

        return original(**{**kwargs, "before_commit": check_then_sweep})

    monkeypatch.setattr(import_jobs, "data_import", data_import)
    prompt_import_jobs.import_job_run(job.pk)
    sweeper.join()
    job.refresh_from_db()
    assert swept == [0]
    assert job.status == "done" and Prompt.objects.filter(project=project).count() == 40


def test_a_job_the_broker_could_not_take_stays_queued_for_the_sweep(
    project, editor, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.prompts import tasks

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(tasks.import_file, "apply_async", down)
    with django_capture_on_commit_callbacks(execute=True):
        job = prompt_import_jobs.import_start(
            project=project, upload=upload(jsonl(rows(40))), actor=editor
        )
    job.refresh_from_db()
    assert job.status == "queued" and job.heartbeat_at is not None and job.stored_path


def test_the_task_is_found_by_the_workers():
    from rubricstudio.celery import app

    app.loader.import_default_modules()
    assert "annotation.tasks.import_file" in app.tasks


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_runs_an_import_job(settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs the test database on a server (CI: PostgreSQL)")
    settings.CELERY_TASK_ALWAYS_EAGER = False
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    project = Project.objects.create(slug="worker-import", name="Worker import")
    env = {"DATABASE_URL": url, "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
    with celery_worker(f"import-{os.getpid()}@localhost", env=env):
        job = prompt_import_jobs.import_start(
            project=project, upload=upload(jsonl(rows(500))), actor=None
        )
        assert job.status == ImportJob.Status.QUEUED
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.finished:
                break
            time.sleep(0.2)
    assert job.status == ImportJob.Status.DONE, job.error
    assert job.report["prompts_created"] == 500
    assert Prompt.objects.filter(project=project).count() == 500
    assert stored_files(settings) == []
