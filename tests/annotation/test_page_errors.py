"""An ``ApplicationError`` a page view lets escape is shown once, the same way everywhere:
to htmx in the page's message area, to a form post back on the page it came from, and
otherwise as a page in the studio's layout with the error's status."""

from __future__ import annotations

from django.urls import reverse

from annotation.projects.models import Membership, Role
from tests.factories import MembershipFactory


def _demote_the_last_owner(client, project, owner, **headers):  # type: ignore[no-untyped-def]
    client.force_login(owner)
    membership = Membership.objects.get(project=project, user=owner)
    url = reverse("annotation:member_update", args=[project.slug, membership.pk])
    return client.post(url, {"action": "role", "role": "viewer"}, **headers)


def test_a_form_post_goes_back_to_its_page_with_the_message(client, project, owner):  # type: ignore[no-untyped-def]
    page = "http://testserver" + reverse("annotation:members", args=[project.slug])
    response = _demote_the_last_owner(client, project, owner, HTTP_REFERER=page)
    assert response.status_code == 302 and response["Location"] == page
    shown = client.get(page).content.decode()
    assert "owner" in shown and 'class="msg error"' in shown
    assert Membership.objects.get(project=project, user=owner).role == Role.OWNER


def test_htmx_gets_the_message_swapped_into_the_message_area(client, project, owner):  # type: ignore[no-untyped-def]
    response = _demote_the_last_owner(client, project, owner, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#flash" and response["HX-Reswap"] == "innerHTML"
    assert 'role="alert"' in response.content.decode()
    assert Membership.objects.get(project=project, user=owner).role == Role.OWNER


def test_without_a_page_to_go_back_to_the_error_is_a_page_in_the_layout(client, project, owner):  # type: ignore[no-untyped-def]
    response = _demote_the_last_owner(client, project, owner)
    html = response.content.decode()
    assert response.status_code == 400
    assert "That could not be done" in html and "Back to your projects" in html
    assert 'id="flash"' in html  # the studio's layout, not a bare page


def test_a_referer_on_another_site_is_not_followed(client, project, owner):  # type: ignore[no-untyped-def]
    response = _demote_the_last_owner(client, project, owner, HTTP_REFERER="https://evil.example/")
    assert response.status_code == 400


def test_the_api_keeps_its_own_error_shape(api, project, owner):  # type: ignore[no-untyped-def]
    api.force_authenticate(owner)
    membership = Membership.objects.get(project=project, user=owner)
    response = api.patch(
        f"/api/projects/{project.slug}/members/{membership.pk}/", {"role": "viewer"}
    )
    assert response.status_code == 400 and "detail" in response.json()


def test_a_bad_form_value_is_named_and_changes_nothing(client, project, owner):  # type: ignore[no-untyped-def]
    member = MembershipFactory(project=project, role=Role.VIEWER)
    client.force_login(owner)
    url = reverse("annotation:member_update", args=[project.slug, member.pk])
    response = client.post(url, {"action": "role", "role": "emperor"})
    assert response.status_code == 400 and "Role:" in response.content.decode()
    member.refresh_from_db()
    assert member.role == Role.VIEWER


def test_a_page_for_a_higher_role_is_refused_inside_the_studio(client, project, viewer):  # type: ignore[no-untyped-def]
    client.force_login(viewer)
    response = client.get(reverse("annotation:import", args=[project.slug]))
    html = response.content.decode()
    assert response.status_code == 403
    assert "This needs the editor role or higher." in html
    assert 'id="flash"' in html and "Back to your projects" in html


def test_an_outsider_gets_a_404_page_inside_the_studio_that_reveals_nothing(  # type: ignore[no-untyped-def]
    client, project, outsider
):
    client.force_login(outsider)
    response = client.get(reverse("annotation:project_detail", args=[project.slug]))
    html = response.content.decode()
    assert response.status_code == 404
    assert "Nothing here" in html and "Back to your projects" in html
    assert project.name not in html
