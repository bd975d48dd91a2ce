"""A co-authoring job crosses the real broker to a real worker process and back."""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection

from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.models import CoauthorJob, Proposal
from scoring.judges import services as judge_services
from tests.factories import PromptFactory
from tests.workers import celery_worker


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_runs_a_draft_job(project, owner, editor, fake_llm):
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs the test database on a server (CI: PostgreSQL)")
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    prompts = [PromptFactory(project=project) for _ in range(3)]
    judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "fake", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )
    with celery_worker(f"job-{os.getpid()}@localhost", env={"DATABASE_URL": url}):
        job = coauthor_services.job_start(
            project=project, actor=editor, kind="draft", prompt_ids=[p.pk for p in prompts]
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.finished:
                break
            time.sleep(0.2)
    assert (job.status, job.done, job.failed) == ("done", 3, 0), job.error
    assert Proposal.objects.filter(job=job, status="pending").count() == 3
    assert job.prompt_tokens == fake_llm.stats()["usage"]["prompt_tokens"] > 0
    assert CoauthorJob.objects.count() == 1
