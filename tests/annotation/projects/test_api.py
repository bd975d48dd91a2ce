"""API: scoped by membership (outsiders 404, viewers cannot write), counts, schema."""

from __future__ import annotations

import io

import pytest
import yaml
from openapi_spec_validator import validate
from rest_framework.authtoken.models import Token

from annotation.projects.models import Membership
from annotation.prompts.models import Prompt
from tests.factories import PromptFactory, ResponseFactory, RubricFactory, UserFactory


@pytest.fixture
def content(project):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project)
    a = ResponseFactory(prompt=prompt, source="model-a")
    ResponseFactory(prompt=prompt, source="model-b")
    RubricFactory(project=project, prompt=prompt)
    RubricFactory(project=project, prompt=None, criteria=[("Cites a source", 2)])
    return prompt, a


def urls(slug, prompt_id, member_id):  # type: ignore[no-untyped-def]
    base = f"/api/projects/{slug}"
    return [
        f"{base}/",
        f"{base}/prompts/",
        f"{base}/prompts/{prompt_id}/",
        f"{base}/responses/",
        f"{base}/rubrics/",
        f"{base}/members/",
        f"{base}/members/{member_id}/",
    ]


def test_outsider_gets_404_everywhere(api, project, content, owner, outsider):
    api.force_authenticate(outsider)
    member = Membership.objects.get(user=owner)
    for url in urls(project.slug, content[0].pk, member.pk):
        assert api.get(url).status_code == 404, url
    assert api.post(f"/api/projects/{project.slug}/members/", {}).status_code == 404
    assert api.patch(f"/api/projects/{project.slug}/members/{member.pk}/", {}).status_code == 404
    assert api.delete(f"/api/projects/{project.slug}/members/{member.pk}/").status_code == 404
    assert api.post(f"/api/projects/{project.slug}/import/", {}).status_code == 404
    slugs = [p["slug"] for p in api.get("/api/projects/").json()["results"]]
    assert slugs == ["elsewhere"]


def test_anonymous_is_refused(api, project):
    assert api.get(f"/api/projects/{project.slug}/").status_code in (401, 403)
    assert api.get("/api/projects/").status_code in (401, 403)


def test_viewer_reads_but_cannot_write(api, project, content, owner, viewer):
    api.force_authenticate(viewer)
    member = Membership.objects.get(user=owner)
    for url in urls(project.slug, content[0].pk, member.pk):
        assert api.get(url).status_code == 200, url
    UserFactory(username="someone")
    base = f"/api/projects/{project.slug}"
    assert api.post(f"{base}/members/", {"username": "someone", "role": "owner"}).status_code == 403
    assert api.patch(f"{base}/members/{member.pk}/", {"role": "viewer"}).status_code == 403
    assert api.delete(f"{base}/members/{member.pk}/").status_code == 403
    upload = io.BytesIO(b'{"prompt": "hello"}\n')
    upload.name = "x.jsonl"
    assert api.post(f"{base}/import/", {"file": upload}, format="multipart").status_code == 403
    assert Prompt.objects.filter(project=project).count() == 1
    assert Membership.objects.get(pk=member.pk).role == "owner"


def test_project_detail_has_counts(api, project, content, viewer):
    api.force_authenticate(viewer)
    body = api.get(f"/api/projects/{project.slug}/").json()
    assert body["role"] == "viewer"
    assert body["counts"] == {
        "prompts": 1,
        "responses": 2,
        "rubrics": 2,
        "criteria": 3,
        "preference_labels": 0,
        "members": 1,
    }


def test_lists_are_paginated_with_count(api, project, viewer):
    for _ in range(60):
        PromptFactory(project=project)
    api.force_authenticate(viewer)
    body = api.get(f"/api/projects/{project.slug}/prompts/").json()
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"]


def test_rubrics_carry_their_current_criteria(
    api, project, content, viewer, django_assert_max_num_queries
):
    api.force_authenticate(viewer)
    with django_assert_max_num_queries(8):
        body = api.get(f"/api/projects/{project.slug}/rubrics/").json()
    by_prompt = {r["prompt"]: r for r in body["results"]}
    assert [c["points"] for c in by_prompt[content[0].pk]["criteria"]] == [5, -3]
    assert by_prompt[None]["criteria"][0]["text"] == "Cites a source"
    scoped = api.get(f"/api/projects/{project.slug}/rubrics/", {"scope": "project"}).json()
    assert scoped["count"] == 1


def test_responses_filter_by_source(api, project, content, viewer):
    api.force_authenticate(viewer)
    body = api.get(f"/api/projects/{project.slug}/responses/", {"source": "model-a"}).json()
    assert [r["id"] for r in body["results"]] == [content[1].pk]


def test_owner_manages_members(api, project, owner):
    UserFactory(username="dr-kim", email="kim@example.org")
    api.force_authenticate(owner)
    base = f"/api/projects/{project.slug}/members/"
    created = api.post(base, {"username": "dr-kim", "role": "reviewer"})
    assert created.status_code == 201 and created.json()["role"] == "reviewer"
    assert created.json()["email"] == "kim@example.org"  # owners see e-mail addresses
    pk = created.json()["id"]
    assert api.patch(f"{base}{pk}/", {"role": "editor"}).json()["role"] == "editor"
    bad = api.post(base, {"username": "nobody", "role": "viewer"})
    assert bad.status_code == 400 and "No user" in bad.json()["detail"]
    me = Membership.objects.get(user=owner)
    last_owner = api.delete(f"{base}{me.pk}/")
    assert last_owner.status_code == 400
    assert api.delete(f"{base}{pk}/").status_code == 204


def test_token_authentication(api, project, viewer):
    token = Token.objects.create(user=viewer)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api.get(f"/api/projects/{project.slug}/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token wrong")
    assert api.get(f"/api/projects/{project.slug}/").status_code == 401


def test_create_project_via_api(api, db):
    user = UserFactory()
    api.force_authenticate(user)
    response = api.post("/api/projects/", {"name": "Legal QA"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "owner"


def test_schema_is_valid_openapi_3(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    spec = yaml.safe_load(response.content)
    assert spec["openapi"].startswith("3.")
    validate(spec)
    assert "/api/projects/{slug}/rubrics/" in spec["paths"]


def test_docs_are_served_without_a_cdn(client, db):
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
