"""Who may create projects: ALLOW_PROJECT_CREATION, "staff" by default (a project's creator
owns it and chooses what its judge endpoints call and spend), "all" to open it; enforced on
the page, the API and the service, and refused without creating anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from annotation.errors import NotAllowed
from annotation.projects import services as project_services
from annotation.projects.models import Membership, Project, Role
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[3]


def _setting_in_a_fresh_process(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ALLOW_PROJECT_CREATION"}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ALLOW_PROJECT_CREATION)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "rubricstudio.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_default_is_staff_and_a_bad_value_is_refused_at_start():
    assert _setting_in_a_fresh_process().stdout.strip() == "staff"
    assert _setting_in_a_fresh_process(ALLOW_PROJECT_CREATION="ALL").stdout.strip() == "all"
    bad = _setting_in_a_fresh_process(ALLOW_PROJECT_CREATION="everyone")
    assert bad.returncode != 0 and "ALLOW_PROJECT_CREATION is 'staff' or 'all'" in bad.stderr


@pytest.fixture
def staff_only(settings):  # type: ignore[no-untyped-def]
    settings.ALLOW_PROJECT_CREATION = "staff"


def test_with_staff_only_a_user_cannot_create_a_project_anywhere(client, api, db, staff_only):
    user = UserFactory(username="mallory")
    client.force_login(user)
    page = client.get(reverse("annotation:project_list")).content.decode()
    assert "Create project" not in page and "New project" not in page
    response = client.post(reverse("annotation:project_list"), {"name": "Mine"})
    assert response.status_code == 403
    api.force_authenticate(user)
    response = api.post("/api/projects/", {"name": "Mine"}, format="json")
    assert response.status_code == 403 and "ALLOW_PROJECT_CREATION" in response.json()["detail"]
    with pytest.raises(NotAllowed):
        project_services.project_create(name="Mine", owner=user)
    assert not Project.objects.exists() and not Membership.objects.exists()


def test_with_staff_only_staff_and_superusers_create_projects(client, api, db, staff_only):
    staff = UserFactory(username="lead", is_staff=True)
    client.force_login(staff)
    assert "Create project" in client.get(reverse("annotation:project_list")).content.decode()
    response = client.post(reverse("annotation:project_list"), {"name": "Law rubrics"})
    assert response.status_code == 302
    assert Membership.objects.get(project__slug="law-rubrics", user=staff).role == Role.OWNER
    root = UserFactory(username="root", is_superuser=True)
    api.force_authenticate(root)
    response = api.post("/api/projects/", {"name": "Legal QA"}, format="json")
    assert response.status_code == 201 and response.json()["role"] == "owner"


def test_with_all_any_user_creates_projects(client, api, db, settings):
    settings.ALLOW_PROJECT_CREATION = "all"
    user = UserFactory(username="anyone")
    client.force_login(user)
    assert client.post(reverse("annotation:project_list"), {"name": "Mine"}).status_code == 302
    api.force_authenticate(user)
    assert api.post("/api/projects/", {"name": "Also"}, format="json").status_code == 201
    assert set(Project.objects.values_list("slug", flat=True)) == {"mine", "also"}
    inactive = UserFactory(username="gone", is_active=False)
    with pytest.raises(NotAllowed):
        project_services.project_create(name="Never", owner=inactive)
