"""The agreement page in headless Chromium: a viewer opens it from the project tabs, the
figures and both trend charts are drawn, a breakdown's confusion matrix opens. The
screenshot goes to var/screenshots/agreement.png."""

from __future__ import annotations

import pytest

from annotation.projects import services as project_services
from tests.annotation.reviews.test_agreement_page import _build
from tests.browser.conftest import SHOTS, login
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_reads_the_agreement_figures(page, live_server):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    owner = UserFactory(username="dr-owner")
    project = project_services.project_create(name="Triage", slug="triage", owner=owner)
    people = {}
    for name, role in (
        ("ana", "reviewer"),
        ("ben", "reviewer"),
        ("cleo", "reviewer"),
        ("vic", "viewer"),
    ):
        people[name] = UserFactory(username=name)
        MembershipFactory(project=project, user=people[name], role=role)
    study = _build(project, owner, [people["ana"], people["ben"], people["cleo"]], limits={0: 20})
    login(page, live_server, "vic")
    page.goto(f"{live_server.url}/p/triage/")
    page.click("nav.tabs >> text=Agreement")
    page.wait_for_selector("#judge-vs-reviews table.matrix")
    assert page.inner_text("#agreement-stats").count(str(len(study.reviews))) >= 1
    for canvas in ("#trend-versions", "#trend-templates"):
        page.wait_for_function(f"document.querySelector('{canvas}').width > 0")
    page.click("#by-template tbody tr:first-child summary")
    assert page.is_visible("#by-template tbody tr:first-child table.matrix")
    assert "Is correct and complete" in page.inner_text("#by-criterion")
    assert "ben" in page.inner_text(f"#humans-{study.queue.pk}")
    page.screenshot(path=str(SHOTS / "agreement.png"), full_page=True)
