"""Every page: the outsider gets 404, a viewer cannot write, members see what they should."""

from __future__ import annotations

import io
import re

import pytest
from django.urls import reverse

from annotation.projects import services as project_services
from annotation.projects.models import Membership, Role
from annotation.prompts.models import Prompt
from annotation.rubrics import services as rubric_services
from tests.factories import PromptFactory, ResponseFactory, RubricFactory, UserFactory


@pytest.fixture
def prompt(project):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(
        project=project,
        external_id="ex-1",
        messages=[{"role": "user", "content": "My chest hurts, what should I do?"}],
    )
    ResponseFactory(prompt=prompt, source="gpt-x", content="Call emergency services.")
    RubricFactory(project=project, prompt=prompt)
    return prompt


def read_urls(project, prompt):  # type: ignore[no-untyped-def]
    return [
        reverse("annotation:project_detail", args=[project.slug]),
        reverse("annotation:prompt_detail", args=[project.slug, prompt.pk]),
        reverse("annotation:members", args=[project.slug]),
    ]


def test_outsider_gets_404_on_every_page(client, project, prompt, owner, outsider):
    client.force_login(outsider)
    for url in [*read_urls(project, prompt), reverse("annotation:import", args=[project.slug])]:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("annotation:import", args=[project.slug])).status_code == 404
    assert (
        client.post(reverse("annotation:members", args=[project.slug]), {"username": "x"})
    ).status_code == 404
    membership = Membership.objects.filter(project=project).first()
    url = reverse("annotation:member_update", args=[project.slug, membership.pk])
    assert client.post(url, {"action": "remove"}).status_code == 404


def test_anonymous_is_sent_to_login(client, project, prompt):
    for url in read_urls(project, prompt):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_viewer_reads_but_cannot_write(client, project, prompt, owner, viewer):
    client.force_login(viewer)
    for url in read_urls(project, prompt):
        assert client.get(url).status_code == 200, url
    import_url = reverse("annotation:import", args=[project.slug])
    assert client.get(import_url).status_code == 403
    upload = io.BytesIO(b'{"prompt": "hi"}\n')
    upload.name = "x.jsonl"
    assert client.post(import_url, {"file": upload}).status_code == 403
    assert Prompt.objects.filter(project=project).count() == 1
    UserFactory(username="newbie")
    members_url = reverse("annotation:members", args=[project.slug])
    assert client.post(members_url, {"username": "newbie", "role": "owner"}).status_code == 403
    owner_membership = Membership.objects.get(project=project, user=owner)
    update = reverse("annotation:member_update", args=[project.slug, owner_membership.pk])
    assert client.post(update, {"action": "remove"}).status_code == 403
    assert Membership.objects.filter(project=project).count() == 2


def test_editor_can_import_but_not_manage_members(client, project, editor):
    client.force_login(editor)
    assert client.get(reverse("annotation:import", args=[project.slug])).status_code == 200
    members_url = reverse("annotation:members", args=[project.slug])
    assert client.post(members_url, {"username": "editor", "role": "owner"}).status_code == 403


def test_owner_adds_changes_and_removes_members(client, project, owner):
    UserFactory(username="dr-ng", email="ng@example.org")
    client.force_login(owner)
    members_url = reverse("annotation:members", args=[project.slug])
    response = client.post(members_url, {"username": "dr-ng", "role": "reviewer"})
    assert response.status_code == 302
    m = Membership.objects.get(project=project, user__username="dr-ng")
    assert m.role == Role.REVIEWER
    update = reverse("annotation:member_update", args=[project.slug, m.pk])
    client.post(update, {"action": "role", "role": "editor"})
    m.refresh_from_db()
    assert m.role == Role.EDITOR
    client.post(update, {"action": "remove"})
    assert not Membership.objects.filter(pk=m.pk).exists()


def test_owner_sees_an_error_for_an_unknown_user(client, project, owner):
    client.force_login(owner)
    members_url = reverse("annotation:members", args=[project.slug])
    response = client.post(members_url, {"username": "ghost", "role": "viewer"}, follow=True)
    assert b"No user with the username" in response.content


def test_superuser_sees_every_project(client, project, prompt):
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(admin)
    assert client.get(reverse("annotation:project_detail", args=[project.slug])).status_code == 200
    assert project.name.encode() in client.get(reverse("annotation:project_list")).content


def test_project_list_shows_only_my_projects(client, project, viewer, outsider):
    client.force_login(outsider)
    content = client.get(reverse("annotation:project_list")).content
    assert b"Alpha" not in content and b"Elsewhere" in content


def test_project_list_creates_a_project(client, db):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("annotation:project_list"), {"name": "Law rubrics"})
    assert response.status_code == 302
    assert Membership.objects.get(project__slug="law-rubrics", user=user).role == Role.OWNER


def test_prompt_table_filters_and_htmx_partial(client, project, prompt, viewer):
    PromptFactory(
        project=project, external_id="ex-2", messages=[{"role": "user", "content": "Knee pain"}]
    )
    client.force_login(viewer)
    url = reverse("annotation:project_detail", args=[project.slug])
    full = client.get(url)
    assert b"<html" in full.content and b"2 prompts" in full.content
    assert client.get(url, {"q": "knee"}).context["page"].paginator.count == 1
    assert client.get(url, {"has_rubric": "yes"}).context["page"].paginator.count == 1
    assert client.get(url, {"has_rubric": "no"}).context["page"].paginator.count == 1
    assert client.get(url, {"rubric_status": "draft"}).context["page"].paginator.count == 1
    assert client.get(url, {"rubric_status": "approved"}).context["page"].paginator.count == 0
    assert client.get(url, {"source": "gpt-x"}).context["page"].paginator.count == 1
    partial = client.get(url, {"q": "chest"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="prompt-table")
    assert b"<html" not in partial.content and b'id="prompt-table"' in partial.content
    assert b"chest hurts" in partial.content and b"Knee" not in partial.content
    assert "HX-Request" in partial["Vary"]


def test_prompt_table_query_count_is_flat(client, project, viewer, django_assert_max_num_queries):
    for i in range(120):
        p = PromptFactory(project=project)
        ResponseFactory(prompt=p)
        if i % 2:
            RubricFactory(project=project, prompt=p)
    client.force_login(viewer)
    url = reverse("annotation:project_detail", args=[project.slug])
    with django_assert_max_num_queries(16):
        response = client.get(url, {"page": 2})
    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 50


def test_prompt_page_shows_conversation_responses_and_rubric(client, project, prompt, viewer):
    client.force_login(viewer)
    content = client.get(reverse("annotation:prompt_detail", args=[project.slug, prompt.pk]))
    html = content.content.decode()
    assert "My chest hurts" in html and "Call emergency services." in html
    assert "Is correct" in html and "-3" in html


def test_prompt_of_another_project_is_404(client, project, prompt, outsider):
    client.force_login(outsider)
    url = reverse("annotation:prompt_detail", args=["elsewhere", prompt.pk])
    assert client.get(url).status_code == 404


def test_account_page_shows_and_rotates_the_token(client, viewer):
    from rest_framework.authtoken.models import Token

    client.force_login(viewer)
    first = client.get(reverse("annotation:account"))
    token = Token.objects.get(user=viewer).key
    assert token.encode() in first.content
    client.post(reverse("annotation:account"))
    assert Token.objects.get(user=viewer).key != token


def test_htmx_posts_carry_the_csrf_token(project, viewer):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    page = client.get(reverse("annotation:project_detail", args=[project.slug]))
    match = re.search(rb'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page.content)
    assert match, "the page must carry the CSRF token for htmx"
    url = reverse("annotation:account")
    assert client.post(url).status_code == 403  # no token: refused
    assert client.post(url, HTTP_X_CSRFTOKEN="wrong" * 8).status_code == 403
    assert client.post(url, HTTP_X_CSRFTOKEN=match.group(1).decode()).status_code == 302


def test_healthz_reports_database_and_broker(client, db):
    response = client.get("/healthz")
    body = response.json()
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok", body
    assert response.status_code == 200


def test_search_matches_message_text_not_json_syntax(client, project, viewer):
    PromptFactory(project=project, messages=[{"role": "user", "content": 'Un café "noir"?'}])
    PromptFactory(project=project, messages=[{"role": "user", "content": "Plain question"}])
    client.force_login(viewer)
    url = reverse("annotation:project_detail", args=[project.slug])
    assert client.get(url, {"q": "café"}).context["page"].paginator.count == 1
    assert client.get(url, {"q": '"noir"'}).context["page"].paginator.count == 1
    assert client.get(url, {"q": "content"}).context["page"].paginator.count == 0


def test_project_list_counts_in_one_query_for_many_projects(
    client, db, django_assert_max_num_queries
):
    from annotation.rubrics.services import CriterionInput

    user = UserFactory(username="busy")
    for i in range(25):
        project = project_services.project_create(name=f"P{i:02d}", owner=user)
        prompt = PromptFactory(project=project)
        ResponseFactory(prompt=prompt)
        rubric = rubric_services.rubric_create(
            project=project,
            prompt=prompt,
            title="r",
            criteria=[
                CriterionInput(text="a b c", points=1),
                CriterionInput(text="d e f", points=2),
            ],
        )
        rubric_services.rubric_version_create(
            rubric=rubric, criteria=[CriterionInput(text="a b c", points=1)]
        )
    client.force_login(user)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("annotation:project_list"))
    first = response.context["projects"][0]
    assert (
        first.n_prompts,
        first.n_responses,
        first.n_rubrics,
        first.n_criteria,
        first.n_members,
    ) == (
        1,
        1,
        1,
        1,  # only the current version's criteria count
        1,
    )


def test_prompt_table_names_rubric_statuses_as_people_write_them(client, project, viewer):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id="st-1")
    RubricFactory(project=project, prompt=prompt, status="in_review")
    client.force_login(viewer)
    html = client.get(reverse("annotation:project_detail", args=[project.slug])).content.decode()
    assert ">In review</span>" in html and "Inreview" not in html


def test_pages_name_the_studio_icon_and_the_icon_is_shipped(client, project, viewer):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from django.contrib.staticfiles import finders

    client.force_login(viewer)
    html = client.get(reverse("annotation:project_detail", args=[project.slug])).content.decode()
    assert 'rel="icon"' in html and "img/favicon.svg" in html
    icon = finders.find("img/favicon.svg")
    assert icon and Path(icon).read_text(encoding="utf-8").startswith("<svg")


def test_owners_change_the_settings_members_read_them(client, project, owner, editor, outsider):  # type: ignore[no-untyped-def]
    from annotation.projects.models import AuditEvent

    url = reverse("annotation:settings", args=[project.slug])
    data = {"name": "Alpha", "description": "", "guidelines": "Cite the guideline.",
            "allow_self_approval": "on"}  # fmt: skip
    client.force_login(editor)
    html = client.get(url).content.decode()
    assert "disabled" in html and "Owners change these settings" in html
    assert client.post(url, data).status_code == 403
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(owner)
    response = client.post(url, data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.guidelines == "Cite the guideline." and project.allow_self_approval
    event = AuditEvent.objects.get(action="project.settings")
    assert set(event.data["fields"]) == {"guidelines", "allow_self_approval"}
    bad = client.post(url, {**data, "name": ""})
    assert bad.status_code == 200 and "This field is required" in bad.content.decode()
    project.refresh_from_db()
    assert project.name == "Alpha"


def test_an_owner_makes_an_account_and_the_colleague_sets_a_password_once(  # type: ignore[no-untyped-def]
    client, project, owner, editor
):
    from django.contrib.auth import get_user_model

    members = reverse("annotation:members", args=[project.slug])
    form = {"form": "account", "username": "dr-lee", "email": "lee@example.org", "role": "reviewer"}
    client.force_login(editor)
    assert client.post(members, form).status_code == 403  # owners only
    client.force_login(owner)
    response = client.post(members, form)
    html = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    link = re.search(r'value="(http://testserver/set-password/[^"]+)"', html).group(1)
    user = get_user_model().objects.get(username="dr-lee")
    assert not user.has_usable_password()
    assert Membership.objects.get(project=project, user=user).role == Role.REVIEWER
    assert client.post(members, form).status_code == 200  # taken: said, nothing made
    assert get_user_model().objects.filter(username="dr-lee").count() == 1

    client.logout()
    page = client.get(link, follow=True)  # Django swaps the token for a session marker
    assert b"Choose your password" in page.content and b'id="set-password"' in page.content
    done = client.post(
        page.redirect_chain[-1][0] if page.redirect_chain else link,
        {"new_password1": "a long Passphrase 7", "new_password2": "a long Passphrase 7"},
    )
    assert done.status_code == 302
    login = client.post(reverse("login"), {"username": "dr-lee", "password": "a long Passphrase 7"})
    assert login.status_code == 302  # logged in
    client.logout()
    again = client.get(link, follow=True).content.decode()
    assert "used already or has expired" in again  # one time only


def test_a_site_can_keep_account_creation_to_its_admin(client, project, owner, settings):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    settings.OWNERS_CREATE_ACCOUNTS = False
    members = reverse("annotation:members", args=[project.slug])
    client.force_login(owner)
    assert 'id="create-account"' not in client.get(members).content.decode()
    form = {"form": "account", "username": "dr-lee", "role": "viewer"}
    assert client.post(members, form).status_code == 403
    assert not get_user_model().objects.filter(username="dr-lee").exists()
