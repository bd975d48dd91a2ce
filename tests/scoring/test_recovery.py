"""The stale-work sweeper: chunks whose lease ran out are queued again in runs still queued
or running, never in paused, cancelled or finished runs, and never while the lease is live;
runs left running with every chunk done are closed; co-authoring jobs whose heartbeat
stopped are queued again; exports still running at EXPORT_TIME_LIMIT fail with the reason.
The end-to-end case (SIGKILL of a real worker) is tests/scoring/runs/test_worker_kill.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.projects.models import AuditEvent
from annotation.prompts.models import ImportJob
from rubricstudio.celery import Sweeper, app
from scoring import recovery
from scoring.coauthoring import tasks as coauthor_tasks
from scoring.coauthoring.models import CoauthorJob
from scoring.datasets.models import Export
from scoring.runs import tasks as run_tasks
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
from scoring.runs.services import run_chunks_sweep
from tests.factories import PromptFactory, ResponseFactory
from tests.workers import ROOT

LEASE = 60


def routed(task, **options) -> str:  # type: ignore[no-untyped-def]
    """The queue Celery sends ``task`` to with these options (CELERY_TASK_ROUTES)."""
    return app.amqp.router.route(options, task.name)["queue"].name


@pytest.fixture
def sent(monkeypatch):  # type: ignore[no-untyped-def]
    """The tasks the sweeper enqueues, as (task, args, queue)."""
    calls: list[tuple[str, tuple, str | None]] = []
    for name in ("score_chunk", "score_chunk_local"):
        task = getattr(run_tasks, name)
        monkeypatch.setattr(
            task,
            "apply_async",
            lambda args, _name=name, _task=task, **options: calls.append(
                (_name, tuple(args), routed(_task, **options))
            ),
        )
    monkeypatch.setattr(
        coauthor_tasks.coauthor_job_run,
        "delay",
        lambda *args: calls.append(("coauthor_job_run", args, None)),
    )
    return calls


def sweep(capture, fn=run_chunks_sweep):  # type: ignore[no-untyped-def]
    with capture(execute=True):
        return fn()


def make_run(project, status, chunks):  # type: ignore[no-untyped-def]
    """A run with chunks given as (status, seconds since the claim, or None: never claimed)."""
    run = Run.objects.create(project=project, mode=Run.Mode.PER_CRITERION, status=status)
    now = timezone.now()
    for index, (chunk_status, age) in enumerate(chunks):
        RunChunk.objects.create(
            run=run,
            index=index,
            status=chunk_status,
            attempts=0 if age is None else 1,
            claimed_at=None if age is None else now - timedelta(seconds=age),
        )
    return run


def statuses(run):  # type: ignore[no-untyped-def]
    return list(run.chunks.order_by("index").values_list("status", flat=True))


def test_expired_chunks_of_queued_and_running_runs_are_requeued_and_live_ones_kept(
    project, settings, sent, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_LEASE = LEASE
    running = make_run(
        project,
        Run.Status.RUNNING,
        [("running", LEASE + 5), ("running", LEASE - 5), ("queued", None), ("done", LEASE * 9)],
    )
    # The worker died after claiming the first chunk, before marking the run running.
    queued = make_run(project, Run.Status.QUEUED, [("running", LEASE * 2), ("queued", None)])

    assert sweep(django_capture_on_commit_callbacks) == 2

    assert statuses(running) == ["queued", "running", "queued", "done"]
    assert statuses(queued) == ["queued", "queued"]
    assert sorted(sent) == [
        ("score_chunk", (running.pk, 0), "default"),
        ("score_chunk", (queued.pk, 0), "default"),
    ]
    events = AuditEvent.objects.filter(action="run.recover").order_by("target")
    assert [(e.target, e.data["chunks"]) for e in events] == [
        (str(running.pk), [0]),
        (str(queued.pk), [0]),
    ]
    # Nothing is requeued twice: the chunks now wait for their new message.
    sent.clear()
    assert sweep(django_capture_on_commit_callbacks) == 0
    assert sent == []


def test_paused_cancelled_and_finished_runs_are_left_alone(
    project, settings, sent, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_LEASE = LEASE
    runs = [
        make_run(project, status, [("running", LEASE * 10), ("queued", None)])
        for status in (Run.Status.PAUSED, Run.Status.CANCELLED, Run.Status.FAILED)
    ]

    assert sweep(django_capture_on_commit_callbacks) == 0

    assert sent == []
    for run in runs:
        assert statuses(run) == ["running", "queued"]
    assert [Run.objects.get(pk=r.pk).status for r in runs] == ["paused", "cancelled", "failed"]
    assert not AuditEvent.objects.filter(action="run.recover").exists()


def test_the_lease_setting_decides_what_has_expired(
    project, settings, sent, django_capture_on_commit_callbacks
):
    run = make_run(project, Run.Status.RUNNING, [("running", 30)])
    settings.SCORING_CHUNK_LEASE = 31
    assert sweep(django_capture_on_commit_callbacks) == 0
    assert statuses(run) == ["running"]
    settings.SCORING_CHUNK_LEASE = 29
    assert sweep(django_capture_on_commit_callbacks) == 1
    assert statuses(run) == ["queued"]


def test_a_local_runs_chunk_goes_back_to_the_gpu_queue(
    project, settings, sent, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_LEASE = LEASE
    run = make_run(project, Run.Status.RUNNING, [("running", LEASE + 1)])
    Run.objects.filter(pk=run.pk).update(template_version="local-criterion-v1")
    assert sweep(django_capture_on_commit_callbacks) == 1
    assert sent == [("score_chunk_local", (run.pk, 0), "gpu")]


def test_a_requeued_chunk_is_completed_once_and_the_run_counted_exactly(
    project, settings, django_capture_on_commit_callbacks
):
    """The dead worker wrote its chunk's judgments but died before marking the chunk done:
    the requeued chunk (run in-process, eagerly) links them without judging again."""
    settings.SCORING_CHUNK_LEASE = LEASE
    settings.CELERY_TASK_ALWAYS_EAGER = True
    prompt = PromptFactory(project=project)
    responses = [ResponseFactory(prompt=prompt, content=f"Answer {i}") for i in range(4)]
    run = make_run(project, Run.Status.RUNNING, [("done", LEASE * 3), ("running", LEASE * 2)])
    Run.objects.filter(pk=run.pk).update(total=4, template_version="criterion-v1")
    units = []
    for i, response in enumerate(responses):
        key = f"{i:064x}"
        units.append({"r": response.pk, "s": 0, "crit": [], "k": key})
        judgment = Judgment.objects.create(
            key=key, mode=run.mode, response=response, model="m", template_version="t",
            met=i % 2 == 0, created_by_run=run, calls=1,
        )  # fmt: skip
        if i < 2:  # the first chunk, finished before the worker died
            RunJudgment.objects.create(run=run, judgment=judgment)
    RunChunk.objects.filter(run=run, index=0).update(units=units[:2])
    RunChunk.objects.filter(run=run, index=1).update(units=units[2:])

    assert sweep(django_capture_on_commit_callbacks) == 1

    run.refresh_from_db()
    assert (run.status, run.done, run.failed, run.total, run.calls) == ("done", 4, 0, 4, 4)
    assert statuses(run) == ["done", "done"]
    assert run.chunks.get(index=1).attempts == 2
    assert RunJudgment.objects.filter(run=run).count() == 4
    assert Judgment.objects.filter(created_by_run=run).count() == 4


def test_a_run_left_running_with_every_chunk_done_is_closed(
    project, settings, sent, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_LEASE = LEASE
    finished = make_run(project, Run.Status.RUNNING, [("done", 5), ("done", 1)])
    going = make_run(project, Run.Status.RUNNING, [("done", 5), ("running", 1)])
    waiting = make_run(project, Run.Status.RUNNING, [("done", 5), ("queued", None)])

    sweep(django_capture_on_commit_callbacks)

    assert Run.objects.get(pk=finished.pk).status == Run.Status.DONE
    assert Run.objects.get(pk=finished.pk).finished_at is not None
    assert Run.objects.get(pk=going.pk).status == Run.Status.RUNNING
    assert Run.objects.get(pk=waiting.pk).status == Run.Status.RUNNING
    assert sent == []


def make_job(project, status, heartbeat_age):  # type: ignore[no-untyped-def]
    beat = None if heartbeat_age is None else timezone.now() - timedelta(seconds=heartbeat_age)
    return CoauthorJob.objects.create(
        project=project, kind=CoauthorJob.Kind.DRAFT, status=status, heartbeat_at=beat
    )


def test_coauthoring_jobs_whose_heartbeat_stopped_are_requeued(
    project, sent, django_capture_on_commit_callbacks
):
    lease = recovery.coauthor_worker.LEASE.total_seconds()
    dead = make_job(project, CoauthorJob.Status.RUNNING, lease + 5)
    never = make_job(project, CoauthorJob.Status.RUNNING, None)
    alive = make_job(project, CoauthorJob.Status.RUNNING, lease - 30)
    cancelled = make_job(project, CoauthorJob.Status.CANCELLED, lease * 3)
    queued = make_job(project, CoauthorJob.Status.QUEUED, lease - 30)
    lost = make_job(project, CoauthorJob.Status.QUEUED, lease + 5)  # its message was lost

    assert sweep(django_capture_on_commit_callbacks, recovery.coauthor_jobs_sweep) == 3

    status = dict(CoauthorJob.objects.values_list("pk", "status"))
    assert status == {
        dead.pk: "queued",
        never.pk: "queued",
        alive.pk: "running",
        cancelled.pk: "cancelled",
        queued.pk: "queued",
        lost.pk: "queued",
    }
    assert sorted(sent) == [
        ("coauthor_job_run", (dead.pk,), None),
        ("coauthor_job_run", (never.pk,), None),
        ("coauthor_job_run", (lost.pk,), None),
    ]
    # requeued and resent jobs were sent just now: the next sweep leaves them to the workers
    assert sweep(django_capture_on_commit_callbacks, recovery.coauthor_jobs_sweep) == 0


def test_a_coauthoring_job_the_broker_could_not_take_is_sent_again(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    calls: list[tuple[int, ...]] = []

    def down(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(coauthor_tasks.coauthor_job_run, "delay", down)
    lease = recovery.coauthor_worker.LEASE.total_seconds()
    job = make_job(project, CoauthorJob.Status.QUEUED, lease + 5)
    assert sweep(django_capture_on_commit_callbacks, recovery.stale_work_sweep).jobs == 1
    assert calls == [(job.pk,)]  # the failure was logged, the sweep went on
    job.refresh_from_db()
    assert job.status == "queued" and job.heartbeat_at > timezone.now() - timedelta(seconds=60)


def test_exports_still_running_at_the_time_limit_fail_with_the_reason(
    project, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.EXPORT_TIME_LIMIT = 3600
    now = timezone.now()

    def make(status, age):  # type: ignore[no-untyped-def]
        export = Export.objects.create(
            project=project, kind="preferences", format="jsonl", status=status,
            started_at=now - timedelta(seconds=age),
        )  # fmt: skip
        directory = recovery.export_services.export_directory(export.pk)
        directory.mkdir(parents=True)
        (directory / "train.jsonl").write_text("{}\n")
        return export, directory

    dead, dead_dir = make(Export.Status.RUNNING, 3601)
    alive, alive_dir = make(Export.Status.RUNNING, 3000)
    done, done_dir = make(Export.Status.DONE, 9000)

    assert sweep(django_capture_on_commit_callbacks, recovery.exports_sweep) == 1

    dead.refresh_from_db()
    assert dead.status == Export.Status.FAILED
    assert "EXPORT_TIME_LIMIT" in dead.error and "1:00:00" in dead.error
    assert dead.files == [] and dead.finished_at is not None
    assert not dead_dir.exists()
    assert Export.objects.get(pk=alive.pk).status == Export.Status.RUNNING and alive_dir.exists()
    assert Export.objects.get(pk=done.pk).status == Export.Status.DONE and done_dir.exists()
    assert AuditEvent.objects.filter(action="export.recover", target=str(dead.pk)).exists()
    assert sweep(django_capture_on_commit_callbacks, recovery.exports_sweep) == 0


def test_one_sweep_covers_runs_jobs_exports_and_imports(
    project, settings, sent, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_LEASE = LEASE
    make_run(project, Run.Status.RUNNING, [("running", LEASE + 1)])
    make_job(project, CoauthorJob.Status.RUNNING, None)
    ImportJob.objects.create(project=project, file_name="f", size=1, status="parsing")
    swept = sweep(django_capture_on_commit_callbacks, recovery.stale_work_sweep)
    assert swept == recovery.Swept(chunks=1, jobs=1, exports=0, imports=1)


def test_the_worker_thread_sweeps_again_after_a_failing_sweep():
    calls: list[int] = []
    enough = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        if len(calls) >= 3:
            enough.set()

    thread = Sweeper(0.01, sweep=flaky)
    thread.start()
    try:
        assert enough.wait(30), calls
    finally:
        thread.stop()
        thread.join(10)
    assert not thread.is_alive()


def settings_in_a_new_process(**env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django; django.setup(); from rubricstudio.celery import app; "
        "print(app.conf.broker_transport_options.get('visibility_timeout'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "rubricstudio.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_redis_visibility_timeout_follows_the_lease():
    done = settings_in_a_new_process(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15", SCORING_CHUNK_LEASE="90"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "150"
    bad = settings_in_a_new_process(SCORING_CHUNK_LEASE="0")
    assert bad.returncode != 0
    assert "SCORING_CHUNK_LEASE" in bad.stderr
