"""The API does what the Runs, Reviews and Agreement pages do: preview and start a run (on a
subset too), follow its progress, read its results, control it, make review queues and read
their progress and the agreement figures. Who may do what is the permission matrix's
(tests/test_permission_matrix.py); here, what the answers hold."""

from __future__ import annotations

import pytest
import yaml

from annotation.prompts.models import PreferenceLabel
from annotation.reviews import services as review_services
from scoring.judges import services as judge_services
from scoring.runs.models import Run
from scoring.runs.subsets import Subset, subset_prompt_ids
from tests.factories import PromptFactory, ResponseFactory
from tests.scoring.runs.test_runs import make_rubric_project

RUNS = "/api/projects/alpha/runs/"


@pytest.fixture
def endpoint(project, owner, fake_llm):  # type: ignore[no-untyped-def]
    data = {"name": "judge", "base_url": fake_llm.url + "/v1", "model": "fake-judge",
            "price_input_per_m": 1.0, "price_output_per_m": 4.0}  # fmt: skip
    return judge_services.endpoint_save(project=project, actor=owner, data=data)


@pytest.fixture
def client(api, editor):  # type: ignore[no-untyped-def]
    api.force_authenticate(editor)
    return api


def test_preview_then_start_a_run_on_five_sampled_prompts_and_follow_it(
    client, project, editor, endpoint, fake_llm, eager
):
    make_rubric_project(project, editor, n_prompts=12, n_responses=2, n_criteria=3)
    body = {"endpoint": endpoint.pk, "subset": {"sample": 5, "seed": 7}, "name": "five"}
    preview = client.post(RUNS + "preview/", body, format="json")
    assert preview.status_code == 200, preview.content
    figures = preview.json()
    assert (figures["prompts"], figures["responses"], figures["judgments"]) == (5, 10, 30)
    assert figures["calls"] == 30 and figures["cost"] > 0 and figures["seconds"] > 0
    assert not Run.objects.exists()  # a preview stores nothing

    created = eager(lambda: client.post(RUNS, body, format="json"))
    assert created.status_code == 201, created.content
    run = Run.objects.get()
    expected = subset_prompt_ids(project=project, subset=Subset(sample=5, seed=7))
    assert sorted(run.prompt_ids) == expected and created.json()["prompts"] == 5

    detail = client.get(f"{RUNS}{run.pk}/").json()
    assert (detail["status"], detail["done"], detail["total"], detail["failed"]) == (
        "done", 30, 30, 0,
    )  # fmt: skip
    assert detail["rate"] > 0 and detail["active_seconds"] >= 0 and detail["seconds_left"] is None
    listed = client.get(RUNS).json()
    assert [r["id"] for r in listed["results"]] == [run.pk]

    results = client.get(f"{RUNS}{run.pk}/results/").json()
    assert sorted(s["source"] for s in results["sources"]) == ["model-0", "model-1"]
    assert sum(s["responses"] for s in results["sources"]) == 10
    assert len(results["responses"]) == 10 and all(
        r["score"] is not None for r in results["responses"]
    )
    assert {r["prompt"] for r in results["responses"]} == set(expected)
    assert results["failures"] == [] and results["pairs"] == []


def test_bad_options_are_clear_errors_and_start_nothing(client, project, editor, endpoint):
    make_rubric_project(project, editor, n_prompts=2, n_responses=1, n_criteria=1)
    cases = [
        ({"endpoint": endpoint.pk, "mode": "bogus"}, "mode"),
        ({"endpoint": endpoint.pk, "samples": 100000}, "between 1 and 20"),
        ({"endpoint": 999999}, "Choose one of this project's endpoints."),
        ({"endpoint": endpoint.pk, "subset": {"ids": ["nope"]}}, "No prompt of this project has the id nope."),
        ({"endpoint": endpoint.pk, "subset": {"sample": 0}}, "greater than or equal to 1"),
    ]  # fmt: skip
    for body, message in cases:
        for url in (RUNS, RUNS + "preview/"):
            answer = client.post(url, body, format="json")
            assert answer.status_code == 400, (body, answer.content)
            assert message in answer.content.decode(), (body, answer.content)
    assert not Run.objects.exists()


def test_control_pause_resume_cancel_and_retry(client, project, editor, endpoint, fake_llm, eager):
    make_rubric_project(project, editor, n_prompts=1, n_responses=2, n_criteria=2)
    run_id = eager(lambda: client.post(RUNS, {"endpoint": endpoint.pk}, format="json")).json()["id"]
    control = f"{RUNS}{run_id}/control/"
    nothing = client.post(control, {"action": "retry_failed"}, format="json")
    assert (
        nothing.status_code == 400 and nothing.json()["detail"] == "No judgment of this run failed."
    )
    Run.objects.filter(pk=run_id).update(status="running")
    paused = client.post(control, {"action": "pause"}, format="json").json()
    assert paused["status"] == "paused" and paused["seconds_left"] is None
    refused = client.post(control, {"action": "retry_failed"}, format="json")
    assert refused.status_code == 400 and "once the run has ended" in refused.json()["detail"]
    resumed = eager(lambda: client.post(control, {"action": "resume"}, format="json")).json()
    assert resumed["status"] == "done"
    cancelled = client.post(control, {"action": "cancel"}, format="json").json()
    assert cancelled["status"] == "done"  # a finished run stays as it ended
    bad = client.post(control, {"action": "explode"}, format="json")
    assert bad.status_code == 400 and "action" in bad.json()


def test_review_queues_from_a_pairwise_run_and_from_imported_pairs(
    client, project, editor, reviewer, endpoint, fake_llm, eager
):
    make_rubric_project(project, editor, n_prompts=2, n_responses=2, n_criteria=1)
    run_id = eager(
        lambda: client.post(RUNS, {"endpoint": endpoint.pk, "mode": "pairwise"}, format="json")
    ).json()["id"]
    made = client.post(f"{RUNS}{run_id}/review-queue/", {"overlap": 1}, format="json")
    assert made.status_code == 201, made.content
    queue = made.json()
    assert queue["origin"] == "run" and queue["source_run"] == run_id
    assert queue["progress"] == {
        "items": 2, "total": 2, "done": 0, "held": 0, "final": 0, "to_adjudicate": 0,
    }  # fmt: skip

    none = client.post("/api/projects/alpha/review-queues/", {}, format="json")
    assert none.status_code == 400 and "no imported preference pairs" in none.json()["detail"]
    prompt = PromptFactory(project=project)
    chosen, rejected = ResponseFactory(prompt=prompt), ResponseFactory(prompt=prompt)
    PreferenceLabel.objects.create(
        prompt=prompt, chosen=chosen, rejected=rejected, source="dataset"
    )
    labels = client.post(
        "/api/projects/alpha/review-queues/", {"name": "pairs", "overlap": 1}, format="json"
    )
    assert labels.status_code == 201 and labels.json()["origin"] == "labels"
    listed = client.get("/api/projects/alpha/review-queues/").json()["results"]
    assert sorted(q["name"] for q in listed) == sorted(["pairs", queue["name"]])

    # A review comes in: the queue's progress and the agreement figures follow.
    from annotation.reviews.models import ReviewQueue

    run_queue = ReviewQueue.objects.get(pk=queue["id"])
    slot = review_services.slot_next(queue=run_queue, reviewer=reviewer)
    review_services.review_commit(slot=slot, reviewer=reviewer, shown="A")
    detail = client.get(f"/api/projects/alpha/review-queues/{run_queue.pk}/").json()
    assert detail["progress"]["done"] == 1 and detail["progress"]["final"] == 1
    figures = client.get(f"/api/projects/alpha/agreement/?queue={run_queue.pk}").json()
    assert figures["reference"] == "judge" and figures["n_reviews"] == 1
    assert figures["overall"]["n"] == 1 and figures["overall"]["accuracy"]["value"] in (0.0, 1.0)
    assert figures["overall"]["labels"] == ["a", "b", "tie"]
    assert sum(map(sum, figures["overall"]["matrix"])) == 1
    assert client.get("/api/projects/alpha/agreement/?queue=x").status_code == 400
    assert client.get("/api/projects/alpha/agreement/?queue=999999").status_code == 404
    everything = client.get("/api/projects/alpha/agreement/").json()
    assert everything["queue"] is None and everything["reference"].startswith("reference")


def test_the_api_additions_are_in_the_schema(client):
    spec = yaml.safe_load(client.get("/api/schema/").content)
    for path in (
        "/api/projects/{slug}/runs/",
        "/api/projects/{slug}/runs/preview/",
        "/api/projects/{slug}/runs/{id}/",
        "/api/projects/{slug}/runs/{id}/results/",
        "/api/projects/{slug}/runs/{id}/control/",
        "/api/projects/{slug}/runs/{id}/review-queue/",
        "/api/projects/{slug}/review-queues/",
        "/api/projects/{slug}/review-queues/{id}/",
        "/api/projects/{slug}/agreement/",
    ):
        assert path in spec["paths"], path
    create = spec["components"]["schemas"]["RunCreateRequest"]["properties"]
    assert {"endpoint", "mode", "subset", "budget"} <= set(create)
    queue = spec["components"]["schemas"]["ReviewQueue"]["properties"]["progress"]
    assert queue["allOf"][0]["$ref"].endswith("/QueueProgress")  # its fields, documented
