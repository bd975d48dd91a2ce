"""Saving rubric versions through the API: stable keys, provenance, checks, and 409 on a
stale base, including two real concurrent saves against the live server."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from annotation.projects import services as project_services
from annotation.projects.models import Membership, Role
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory, UserFactory


@pytest.fixture
def rubric(project):  # type: ignore[no-untyped-def]
    return rubric_services.rubric_create(
        project=project,
        prompt=PromptFactory(project=project),
        title="r",
        criteria=[
            CriterionInput(text="Mentions the dose", points=5),
            CriterionInput(
                text="Warns about interactions", points=3, provenance="llm", provenance_model="m1"
            ),
        ],
    )


def payload(rubric, base, texts):  # type: ignore[no-untyped-def]
    current = {c.text: str(c.key) for c in rubric.current_version.criteria.all()}
    return {
        "base_version": base,
        "note": "edit",
        "criteria": [{"key": current.get(t), "text": t, "points": p} for t, p in texts],
    }


def url(project, rubric):  # type: ignore[no-untyped-def]
    return f"/api/projects/{project.slug}/rubrics/{rubric.pk}/versions/"


def test_save_keeps_keys_and_marks_edited_llm_criteria_hybrid(api, project, rubric, editor):
    api.force_authenticate(editor)
    body = payload(
        rubric, 1, [("Mentions the dose", 5), ("Warns about drug interactions", 3), ("New", 1)]
    )
    old_key = body["criteria"][1]["key"] = str(
        rubric.current_version.criteria.get(text="Warns about interactions").key
    )
    response = api.post(url(project, rubric), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 2
    v2 = RubricVersion.objects.get(rubric=rubric, number=2)
    edited = v2.criteria.get(key=old_key)
    assert (edited.provenance, edited.provenance_model) == ("hybrid", "m1")
    assert v2.criteria.get(text="Mentions the dose").provenance == "human"
    assert v2.author == editor and v2.parent.number == 1
    listed = api.get(url(project, rubric)).json()
    assert [v["number"] for v in listed["results"]] == [2, 1]


def test_stale_base_gets_409_and_writes_nothing(api, project, rubric, editor):
    api.force_authenticate(editor)
    assert (
        api.post(
            url(project, rubric), payload(rubric, 1, [("A first edit", 2)]), format="json"
        ).status_code
        == 201
    )
    stale = api.post(url(project, rubric), payload(rubric, 1, [("Another edit", 2)]), format="json")
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2 and stale.json()["base_version"] == 1
    assert RubricVersion.objects.filter(rubric=rubric).count() == 2


def test_hard_check_errors_refuse_the_save(api, project, rubric, editor):
    api.force_authenticate(editor)
    body = payload(rubric, 1, [("Same thing", 1), ("same   thing!", 2)])
    response = api.post(url(project, rubric), body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "duplicate"
    assert RubricVersion.objects.filter(rubric=rubric).count() == 1


def test_viewer_cannot_save_and_outsider_gets_404(api, project, rubric, viewer, outsider):
    api.force_authenticate(viewer)
    assert api.get(url(project, rubric)).status_code == 200
    assert (
        api.post(url(project, rubric), payload(rubric, 1, [("x y", 1)]), format="json").status_code
        == 403
    )
    api.force_authenticate(outsider)
    assert api.get(url(project, rubric)).status_code == 404
    assert (
        api.post(url(project, rubric), payload(rubric, 1, [("x y", 1)]), format="json").status_code
        == 404
    )
    assert RubricVersion.objects.filter(rubric=rubric).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_saves_on_one_base_exactly_one_wins(live_server):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (CI runs this there)")
    owner = UserFactory(username="author-a")
    other = UserFactory(username="author-b")
    project = project_services.project_create(name="Concurrency", owner=owner)
    Membership.objects.create(project=project, user=other, role=Role.EDITOR)
    rubric = rubric_services.rubric_create(
        project=project, title="r", criteria=[CriterionInput(text="Base criterion", points=1)]
    )
    tokens = [Token.objects.create(user=u).key for u in (owner, other)]
    barrier = threading.Barrier(2)
    results: list[tuple[int, dict]] = []

    def save(token: str, text: str) -> None:
        body = json.dumps({"base_version": 1, "criteria": [{"text": text, "points": 2}]}).encode()
        request = urllib.request.Request(
            f"{live_server.url}{url(project, rubric)}",
            data=body,
            method="POST",
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                results.append((response.status, json.loads(response.read())))
        except urllib.error.HTTPError as error:
            results.append((error.code, json.loads(error.read())))

    threads = [
        threading.Thread(target=save, args=(tokens[0], "Edit by A")),
        threading.Thread(target=save, args=(tokens[1], "Edit by B")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(code for code, _ in results)
    assert statuses == [201, 409], results
    conflict = next(body for code, body in results if code == 409)
    assert conflict["current_version"] == 2
    assert RubricVersion.objects.filter(rubric=rubric).count() == 2
    rubric.refresh_from_db()
    winner = next(body for code, body in results if code == 201)
    assert (
        Criterion.objects.get(version=rubric.current_version).text == winner["criteria"][0]["text"]
    )
    assert Rubric.objects.get(pk=rubric.pk).current_version.number == 2
