"""History, diff between any two versions, and restore."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import RubricVersion
from annotation.rubrics.services import CriterionInput
from tests.factories import PromptFactory


@pytest.fixture
def rubric(project, editor):  # type: ignore[no-untyped-def]
    rubric = rubric_services.rubric_create(
        project=project,
        prompt=PromptFactory(project=project),
        title="Chest pain",
        author=editor,
        criteria=[
            CriterionInput(text="Advises calling emergency services", points=10),
            CriterionInput(text="Asks about the duration", points=3),
        ],
    )
    keys = [str(c.key) for c in rubric.current_version.criteria.order_by("position")]
    rubric_services.rubric_version_create(
        rubric=rubric,
        author=editor,
        note="sharper wording",
        criteria=[
            CriterionInput(
                text="Advises calling emergency services at once", points=8, key=keys[0]
            ),
            CriterionInput(text="Recommends waiting it out", points=-5, category="pitfall"),
        ],
    )
    return rubric


def test_history_lists_versions_and_links(client, project, rubric, viewer):
    client.force_login(viewer)
    html = client.get(
        reverse("annotation:rubric_history", args=[project.slug, rubric.pk])
    ).content.decode()
    assert "v2" in html and "v1" in html and "sharper wording" in html
    assert "Restore" not in html  # viewers have no edit controls


def test_diff_shows_word_level_and_field_changes(client, project, rubric, viewer):
    client.force_login(viewer)
    url = reverse("annotation:rubric_diff", args=[project.slug, rubric.pk])
    response = client.get(url, {"a": 1, "b": 2})
    html = response.content.decode()
    assert response.context["summary"] == {"added": 1, "removed": 1, "changed": 1, "moved": 0}
    assert "emergency services<ins> at once</ins>" in html
    assert "points 10 → 8" in html
    assert "Recommends waiting it out" in html and "Asks about the duration" in html
    assert client.get(url, {"a": 1, "b": 9}).status_code == 404


def test_restore_makes_a_new_version_with_the_old_keys(client, project, rubric, editor):
    client.force_login(editor)
    v1_keys = list(
        RubricVersion.objects.get(rubric=rubric, number=1).criteria.values_list("key", flat=True)
    )
    response = client.post(reverse("annotation:rubric_restore", args=[project.slug, rubric.pk, 1]))
    assert response.status_code == 302
    rubric.refresh_from_db()
    assert rubric.current_version.number == 3
    assert rubric.current_version.note == "Restored version 1"
    assert list(rubric.current_version.criteria.values_list("key", flat=True)) == v1_keys


def test_viewer_cannot_restore_and_outsider_gets_404(client, project, rubric, viewer, outsider):
    restore = reverse("annotation:rubric_restore", args=[project.slug, rubric.pk, 1])
    client.force_login(viewer)
    assert client.post(restore).status_code == 403
    client.force_login(outsider)
    for name in ("rubric_history", "rubric_diff"):
        assert (
            client.get(reverse(f"annotation:{name}", args=[project.slug, rubric.pk])).status_code
            == 404
        )
    assert client.post(restore).status_code == 404
    assert RubricVersion.objects.filter(rubric=rubric).count() == 2


def test_history_and_diff_query_counts_are_bounded(
    client, project, editor, django_assert_max_num_queries
):
    criteria = [
        CriterionInput(text=f"Criterion number {i} about topic {i}", points=1) for i in range(60)
    ]
    rubric = rubric_services.rubric_create(
        project=project, title="big", criteria=criteria, author=editor
    )
    for n in range(29):
        keys = [c.key for c in rubric.current_version.criteria.order_by("position")]
        rubric.refresh_from_db()
        rubric_services.rubric_version_create(
            rubric=rubric,
            author=editor,
            enforce_checks=False,
            criteria=[
                CriterionInput(
                    text=f"Criterion number {i} about topic {i} rev {n}", points=1, key=k
                )
                for i, k in enumerate(keys)
            ],
        )
        rubric.refresh_from_db()
    client.force_login(editor)
    with django_assert_max_num_queries(12):
        assert (
            client.get(
                reverse("annotation:rubric_history", args=[project.slug, rubric.pk])
            ).status_code
            == 200
        )
    with django_assert_max_num_queries(14):
        response = client.get(
            reverse("annotation:rubric_diff", args=[project.slug, rubric.pk]), {"a": 1, "b": 30}
        )
    assert response.context["summary"]["changed"] == 60
