"""SIGKILL of a worker in the middle of a 2,000-judgment run, then a new worker and nobody
pressing Resume: the new worker's sweeper takes over the dead worker's chunks once their
lease runs out and the run finishes by itself with exactly 2,000 judgments, none lost and
none duplicated (real worker processes, the real broker and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import connection

from annotation.projects.models import AuditEvent
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.judges import services as judge_services
from scoring.runs import services as run_services
from scoring.runs.models import Judgment, Run, RunChunk, RunJudgment
from scoring.runs.modes.per_criterion import PerCriterionMode
from tests.factories import PromptFactory, ResponseFactory
from tests.workers import celery_worker

LEASE = 2  # seconds; the workers sweep every SWEEP seconds
SWEEP = 0.5


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_run_then_a_new_worker_finishes_it_alone_with_exactly_2000_judgments(
    project, owner, editor, fake_llm
):
    if connection.vendor != "postgresql":
        pytest.skip("worker processes need the test database on a server (CI: PostgreSQL)")
    db = connection.settings_dict
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "SCORING_CHUNK_LEASE": str(LEASE),
        "SCORING_SWEEP_INTERVAL": str(SWEEP),
    }
    rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=editor,
        criteria=[CriterionInput(text=f"Covers point {i}", points=i + 1) for i in range(10)],
    )
    for p in range(20):
        prompt = PromptFactory(project=project)
        for r in range(10):
            ResponseFactory(prompt=prompt, source=f"m{r % 3}", content=f"Answer {p}.{r}")
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "j",
            "base_url": fake_llm.url + "/v1",
            "model": "fake-judge",
            "max_concurrency": 8,
        },  # fmt: skip
    )
    fake_llm.configure(latency=0.02)
    PerCriterionMode.chunk_size = 250
    try:
        with celery_worker(f"kill-{os.getpid()}@localhost", env=env) as worker:
            run = run_services.run_create(
                project=project, actor=editor, endpoint=endpoint, mode="per_criterion"
            )
            assert run.total == 2000 and run.chunks.count() == 8

            def mid_run() -> bool:
                made = Judgment.objects.filter(created_by_run=run).count()
                return 300 <= made < 1800

            assert wait_for(mid_run, 60), "the run never got going"
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        made_before = Judgment.objects.filter(created_by_run=run).count()
        assert made_before < 2000
        dead = list(RunChunk.objects.filter(run=run, status="running").values_list("pk", flat=True))
        assert dead, "the killed worker held no chunk"
        with celery_worker(f"again-{os.getpid()}@localhost", env=env):
            # No run_resume: the new worker's sweeper requeues the dead worker's chunks.
            assert wait_for(lambda: Run.objects.get(pk=run.pk).status == "done", 180), (
                Run.objects.get(pk=run.pk).status,
                Run.objects.get(pk=run.pk).note,
                list(RunChunk.objects.filter(run=run).values_list("index", "status")),
            )
    finally:
        PerCriterionMode.chunk_size = 500
    run.refresh_from_db()
    links = RunJudgment.objects.filter(run=run)
    assert links.count() == 2000
    assert Judgment.objects.filter(created_by_run=run).count() == 2000
    assert not Judgment.objects.filter(created_by_run=run).exclude(error="").exists()
    assert (run.done, run.failed, run.total) == (2000, 0, 2000)
    keys = list(Judgment.objects.filter(created_by_run=run).values_list("key", flat=True))
    assert len(set(keys)) == 2000
    assert not RunChunk.objects.filter(run=run).exclude(status="done").exists()
    # The dead worker's chunks were taken over (claimed again), not finished by it.
    assert all(c.attempts >= 2 for c in RunChunk.objects.filter(pk__in=dead))
    recovered = AuditEvent.objects.filter(action="run.recover", target=str(run.pk))
    assert set(dead) <= {
        RunChunk.objects.get(run=run, index=i).pk for e in recovered for i in e.data["chunks"]
    }
    assert not AuditEvent.objects.filter(action="run.resume").exists()
