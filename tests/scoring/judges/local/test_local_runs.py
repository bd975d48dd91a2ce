"""Runs graded by a local endpoint: per-criterion P(yes) and pairwise P(A) stored with
every judgment and shown on the run page, equal to scoring the same prompts directly;
local runs go to the ``gpu`` queue; what a local endpoint cannot do is a clear error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.coauthoring import services as coauthor_services
from scoring.engine.judging import JudgeCriterion
from scoring.judges import services as judge_services
from scoring.judges.local.model import LocalSpec, load_judge
from scoring.judges.local.prompting import criterion_pieces, pairwise_pieces
from scoring.runs import chunks as run_chunks
from scoring.runs import services as run_services
from scoring.runs.models import Judgment, Run
from scoring.runs.results import run_results
from tests.factories import PromptFactory, ResponseFactory
from tests.workers import celery_worker

CRITERIA = [
    ("Advises rest and fluids.", 5),
    ("Names red-flag symptoms.", 3),
    ("Gives an unsafe dose.", -6),
]


@pytest.fixture
def local_endpoint(project, owner, settings, tiny_model_dir):  # type: ignore[no-untyped-def]
    settings.LOCAL_MODEL_DIRS = [str(Path(tiny_model_dir).parent)]
    return judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "tiny local",
            "backend": "local",
            "model_path": str(tiny_model_dir),
            "dtype": "float32",
            "device": "cpu",
            "threshold": 0.5,
        },
    )


def _rubric_project(project, editor, prompts=3, responses=3):  # type: ignore[no-untyped-def]
    rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in CRITERIA],
    )
    for p in range(prompts):
        prompt = PromptFactory(project=project)
        for r in range(responses):
            ResponseFactory(
                prompt=prompt,
                source=f"model-{r}",
                content=f"Answer {p}/{r}: " + "rest " * (r * 7 + 1),
            )


def _launch(eager, project, editor, endpoint, **options):  # type: ignore[no-untyped-def]
    run = eager(
        lambda: run_services.run_create(project=project, actor=editor, endpoint=endpoint, **options)
    )
    run.refresh_from_db()
    return run


def test_per_criterion_run_stores_p_yes_equal_to_direct_scoring(
    project, editor, viewer, local_endpoint, tiny_model_dir, eager, client
):
    _rubric_project(project, editor)
    run = _launch(eager, project, editor, local_endpoint, mode="per_criterion")
    assert (run.status, run.done, run.failed, run.total) == ("done", 27, 0, 27)
    assert run.is_local and run.template_version == "local-criterion-v1"
    assert run.cost == 0 and run.calls == 0

    judge = load_judge(LocalSpec(str(tiny_model_dir), dtype="float32", device="cpu"))
    judgments = Judgment.objects.filter(created_by_run=run).select_related("response__prompt")
    assert judgments.count() == 27
    criteria = [JudgeCriterion(1, t, p) for t, p in CRITERIA]
    by_text = {t: i for i, (t, _) in enumerate(CRITERIA)}
    for response in {j.response for j in judgments}:
        pieces = criterion_pieces(
            judge.tokenizer, response.prompt.messages, response.content, criteria
        )
        direct = judge.score([pieces.prefix + s for s in pieces.suffixes])
        results = run_results(run, with_verdicts=True)
        row = next(r for r in results.responses if r.response.pk == response.pk)
        for criterion, judgment in row.verdicts:
            expected = direct[by_text[criterion["text"]]].probability
            assert judgment.probability == pytest.approx(expected, abs=1e-4)
            assert judgment.met == (judgment.probability >= 0.5)
            assert 0 < judgment.detail["mass"] <= 1
        points = [c["points"] for c, _ in row.verdicts]
        probabilities = [j.probability for _, j in row.verdicts]
        assert row.expected == pytest.approx(
            sum(w * p for w, p in zip(points, probabilities, strict=True)) / 8
        )

    # Shown to a viewer: the expected score column and each verdict's P(yes).
    client.force_login(viewer)
    page = client.get(reverse("scoring:run", args=[project.slug, run.pk])).content.decode()
    assert "Expected score" in page
    one = judgments.first()
    detail = client.get(
        reverse("scoring:run_response", args=[project.slug, run.pk, one.response_id])
    ).content.decode()
    assert f"P(yes) {one.probability:.3f}" in detail

    # A re-run with the same model and inputs reuses every judgment.
    again = _launch(eager, project, editor, local_endpoint, mode="per_criterion")
    assert (again.done, again.reused) == (27, 27)


def test_pairwise_run_averages_both_orders(
    project, editor, local_endpoint, tiny_model_dir, eager, client
):  # type: ignore[no-untyped-def]
    _rubric_project(project, editor, prompts=2, responses=3)
    run = _launch(eager, project, editor, local_endpoint, mode="pairwise")
    assert (run.status, run.failed) == ("done", 0)
    results = run_results(run)
    assert len(results.pairs) == 2 * 3  # three pairs per prompt
    judge = load_judge(LocalSpec(str(tiny_model_dir), dtype="float32", device="cpu"))
    criteria = [JudgeCriterion(i, t, p) for i, (t, p) in enumerate(CRITERIA, 1)]
    for pair in results.pairs:
        readings = []
        for first, second in ((pair.a, pair.b), (pair.b, pair.a)):
            pieces = pairwise_pieces(
                judge.tokenizer, first.prompt.messages, first.content, second.content, criteria
            )
            readings.append(judge.score([pieces.prefix + pieces.suffixes[0]], pairwise=True)[0])
        expected = (readings[0].probability + 1 - readings[1].probability) / 2
        assert pair.probability == pytest.approx(expected, abs=1e-4)
        if pair.consistent:
            assert pair.winner == ("a" if readings[0].probability > 0.5 else "b")
    one = Judgment.objects.filter(created_by_run=run).first()
    assert set(one.detail["criteria"]) == {"1", "2", "3"}  # JSON keys
    assert results.position is not None and results.position.pairs == len(results.pairs)
    client.force_login(editor)
    page = client.get(reverse("scoring:run", args=[project.slug, run.pk])).content.decode()
    assert "P(A better)" in page


def test_what_a_local_judge_cannot_do_is_a_clear_error(project, editor, local_endpoint, eager):  # type: ignore[no-untyped-def]
    _rubric_project(project, editor, prompts=1, responses=2)
    for options, message in (
        ({"mode": "grouped"}, "grades per criterion or pairwise"),
        ({"mode": "holistic"}, "grades per criterion or pairwise"),
        ({"mode": "per_criterion", "samples": 3}, "one sample and no temperature"),
        ({"mode": "per_criterion", "temperature": 0.7}, "one sample and no temperature"),
    ):
        with pytest.raises(ApplicationError, match=message):
            run_services.run_create(
                project=project, actor=editor, endpoint=local_endpoint, **options
            )
    assert not Run.objects.exists()
    with pytest.raises(ApplicationError, match="cannot write rubrics"):
        coauthor_services.endpoint_for(project, local_endpoint.pk)


def test_an_endpoint_changed_mid_run_fails_the_run_instead_of_mixing_judges(
    project, owner, editor, local_endpoint, tiny_chat_model_dir, django_capture_on_commit_callbacks
):  # type: ignore[no-untyped-def]
    _rubric_project(project, editor, prompts=1, responses=2)
    with django_capture_on_commit_callbacks(execute=False):
        run = run_services.run_create(
            project=project, actor=editor, endpoint=local_endpoint, mode="per_criterion"
        )
    judge_services.endpoint_save(
        project=project, actor=owner, endpoint=local_endpoint,
        data={"model_path": str(tiny_chat_model_dir)},
    )  # fmt: skip
    run_chunks.chunk_run(run.pk, 0)
    run.refresh_from_db()
    assert run.status == "failed" and "was changed since this run started" in run.note
    assert not Judgment.objects.exists()


def test_a_default_coauthor_endpoint_turned_local_is_passed_over(
    project, owner, settings, tiny_model_dir
):  # type: ignore[no-untyped-def]
    settings.LOCAL_MODEL_DIRS = [str(Path(tiny_model_dir).parent)]
    settings.LLM_PRIVATE_HOSTS = ["127.0.0.1:9"]  # never called: an address to save
    first = judge_services.endpoint_save(
        project=project, actor=owner,
        data={"name": "a-llm", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
    )  # fmt: skip
    judge_services.endpoint_save(
        project=project, actor=owner, endpoint=first,
        data={"backend": "local", "model_path": str(tiny_model_dir)},
    )  # fmt: skip
    with pytest.raises(ApplicationError, match="No judge endpoint is configured"):
        coauthor_services.endpoint_for(project)
    other = judge_services.endpoint_save(
        project=project, actor=owner,
        data={"name": "b-llm", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
    )  # fmt: skip
    assert coauthor_services.endpoint_for(project) == other
    assert coauthor_services.endpoint_for(project, generating=False) == first


def test_local_endpoint_validation(project, owner, settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.LOCAL_MODEL_DIRS = [str(tmp_path / "models")]
    base = {"name": "l", "backend": "local", "device": "cpu"}
    for data, message in (
        ({}, "needs the directory of its model"),
        ({"model_path": "/etc"}, "not an absolute directory under LOCAL_MODEL_DIRS"),
        ({"model_path": str(tmp_path / "models" / ".." / "x")}, "not an absolute directory"),
        ({"model_path": "models/x"}, "not an absolute directory"),
        ({"model_path": str(tmp_path / "models" / "m"), "device": "tpu"}, "Unknown device"),
        ({"model_path": str(tmp_path / "models" / "m"), "dtype": "int4"}, "Unknown dtype"),
        ({"model_path": str(tmp_path / "models" / "m"), "threshold": 1.5}, "between 0 and 1"),
        ({"model_path": str(tmp_path / "models" / "m"), "batch_tokens": 10}, "Tokens per batch"),
        ({"backend": "onnx", "model_path": str(tmp_path / "models" / "m")}, "Unknown backend"),
    ):
        with pytest.raises(ApplicationError, match=message):
            judge_services.endpoint_save(project=project, actor=owner, data={**base, **data})
    with pytest.raises(ApplicationError, match="do not name an API key"):
        judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={**base, "model_path": str(tmp_path / "models" / "m"), "api_key_env": "X"},
        )
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={**base, "model_path": str(tmp_path / "models" / "Qwen2-1.5B"), "base_url": "x"},
    )
    assert (endpoint.model, endpoint.base_url, endpoint.provider) == ("Qwen2-1.5B", "", None)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "link").symlink_to("/etc")
    with pytest.raises(ApplicationError, match="not an absolute directory under"):
        judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={**base, "model_path": str(tmp_path / "models" / "link")},
        )
    assert "not visible from the web server" in judge_services.endpoint_test(endpoint=endpoint)


def test_a_model_that_does_not_load_fails_the_run_with_the_reason(
    project, owner, editor, settings, tmp_path, eager
):  # type: ignore[no-untyped-def]
    settings.LOCAL_MODEL_DIRS = [str(tmp_path)]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "llama"}')
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "b",
            "backend": "local",
            "model_path": str(tmp_path / "broken"),
            "device": "cpu",
        },
    )
    _rubric_project(project, editor, prompts=1, responses=1)
    run = _launch(eager, project, editor, endpoint, mode="per_criterion")
    assert run.status == "failed"
    assert run.note.startswith("The local model of “b” did not load:")


def test_the_judges_page_adds_a_local_endpoint(project, owner, settings, tiny_model_dir, client):  # type: ignore[no-untyped-def]
    settings.LOCAL_MODEL_DIRS = [str(Path(tiny_model_dir).parent)]
    client.force_login(owner)
    url = reverse("scoring:judges", args=[project.slug])
    response = client.post(
        url,
        {
            "form": "endpoint",
            "name": "on the GPU",
            "backend": "local",
            "model_path": str(tiny_model_dir),
            "dtype": "auto",
            "device": "auto",
            "batch_tokens": "8192",
            "threshold": "0.6",
            "temperature": "0",
            "max_tokens": "2048",
            "timeout": "60",
            "max_concurrency": "8",
            "price_input_per_m": "0",
            "price_output_per_m": "0",
        },
        follow=True,
    )
    page = response.content.decode()
    assert "Endpoint “on the GPU” added." in page
    assert str(tiny_model_dir) in page
    endpoint = project.judge_endpoints.get()
    assert (endpoint.backend, endpoint.batch_tokens, endpoint.threshold) == ("local", 8192, 0.6)
    test = client.post(reverse("scoring:endpoint_test", args=[project.slug, endpoint.pk]))
    assert "Found the model: config.json and 1 weight file(s)" in test.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_gpu_queue_worker_runs_a_local_run(project, owner, editor, settings, tiny_model_dir):  # type: ignore[no-untyped-def]
    """The run's chunks cross the real broker to a worker that serves only the gpu queue."""
    if connection.vendor != "postgresql":
        pytest.skip("the worker process needs the test database on a server (CI: PostgreSQL)")
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    root = str(Path(tiny_model_dir).parent)
    settings.LOCAL_MODEL_DIRS = [root]
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "gpu",
            "backend": "local",
            "model_path": str(tiny_model_dir),
            "device": "cpu",
        },
    )
    _rubric_project(project, editor, prompts=2, responses=2)
    env = {"DATABASE_URL": url, "LOCAL_MODEL_DIRS": root}
    with celery_worker(f"gpu-{os.getpid()}@localhost", env=env, queues="gpu"):
        run = run_services.run_create(
            project=project, actor=editor, endpoint=endpoint, mode="per_criterion"
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.finished:
                break
            time.sleep(0.2)
    assert (run.status, run.done, run.failed) == ("done", 12, 0), run.note
    assert Judgment.objects.filter(created_by_run=run, probability__isnull=False).count() == 12
