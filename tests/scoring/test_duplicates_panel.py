"""The near-duplicates panel of the rubric editor: pending until a worker on the gpu queue
has embedded the criteria, then warnings within the rubric (with a merge that edits the
person's draft) and against the project's other rubrics; who may see and merge; CSRF; bad
input changes nothing."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services as annotation_services
from annotation.models import Criterion, RubricDraft
from annotation.services import CriterionInput
from scoring import tasks
from scoring.models import Embedding
from tests.factories import PromptFactory
from tests.scoring.test_embeddings import DISTINCT, RAW_MILK, VIRUSES

HX = {"HTTP_HX_REQUEST": "true"}


def _rubric(project, editor, external_id, texts, **kwargs):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id=external_id) if external_id else None
    return annotation_services.rubric_create(
        project=project,
        prompt=prompt,
        title=kwargs.pop("title", f"Rubric {external_id}"),
        author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in texts],
        **kwargs,
    )


@pytest.fixture
def rubric(project, editor):  # type: ignore[no-untyped-def]
    """Raw milk twice (a planted paraphrase), viruses (paraphrased in another rubric)."""
    return _rubric(
        project,
        editor,
        "milk-1",
        [(DISTINCT[1], 8), (RAW_MILK, 6), (DISTINCT[7], 5), (DISTINCT[8], 1)],
    )


@pytest.fixture
def others(project, editor):  # type: ignore[no-untyped-def]
    viruses = _rubric(project, editor, "virus-1", [(VIRUSES, 4), (DISTINCT[11], 5)])
    wide = _rubric(project, editor, None, [(DISTINCT[0], 2)], title="House style")
    archived = _rubric(project, editor, "old-1", [(DISTINCT[7], 3)])
    annotation_services.rubric_archive(rubric=archived, actor=editor)
    return viruses, wide


def panel_url(rubric, attempt=None):  # type: ignore[no-untyped-def]
    url = reverse("scoring:duplicates_panel", args=[rubric.project.slug, rubric.pk])
    return url if attempt is None else f"{url}?attempt={attempt}"


def merge_url(rubric):  # type: ignore[no-untyped-def]
    return reverse("scoring:duplicates_merge", args=[rubric.project.slug, rubric.pk])


def keys(rubric):  # type: ignore[no-untyped-def]
    rows = Criterion.objects.filter(version=rubric.current_version).order_by("position")
    return [str(k) for k in rows.values_list("key", flat=True)]


def embedded(client, rubric, eager) -> str:  # type: ignore[no-untyped-def]
    """The panel after its first load has had the worker task run (eagerly)."""
    first = eager(lambda: client.get(panel_url(rubric))).content.decode()
    assert "(pending)" in first
    return client.get(panel_url(rubric, 1)).content.decode()


def test_the_editor_loads_the_panel_by_url(client, rubric, viewer):
    client.force_login(viewer)
    page = client.get(reverse("annotation:prompt_detail", args=["alpha", rubric.prompt_id]))
    assert f'hx-get="{panel_url(rubric)}"' in page.content.decode()


def test_pending_then_warnings_with_both_texts_and_the_cosine(
    client, rubric, others, viewer, eager
):
    client.force_login(viewer)
    first = eager(lambda: client.get(panel_url(rubric))).content.decode()
    assert "Embedding 7 criteria… (pending)" in first  # 4 here, 2 + 1 in the other rubrics
    assert f'hx-get="{panel_url(rubric, 1)}" hx-trigger="load delay:2s"' in first
    assert Embedding.objects.count() == 7  # the worker task ran when the request committed

    html = client.get(panel_url(rubric, 1)).content.decode()
    assert "pending" not in html and "hx-trigger" not in html  # done: no more polling
    pairs = html.split('class="dup-pair"')[1:]
    within = [p for p in pairs if "data-within" in p]
    assert len(within) == 1
    assert DISTINCT[1] in within[0] and RAW_MILK in within[0]
    cosines = re.findall(r'class="cosine">([0-9.]+)<', html)
    assert float(cosines[0]) >= 0.85
    # Across the project: the viruses criterion and its paraphrase in the other prompt's
    # rubric, linked there; the archived rubric's identical text is not reported.
    viruses, _ = others
    key = str(Criterion.objects.get(version=viruses.current_version, text=VIRUSES).key)
    link = reverse("annotation:prompt_detail", args=["alpha", viruses.prompt_id]) + f"#c-{key}"
    assert f'href="{link}"' in html and VIRUSES in html
    assert html.count("data-across") == 1 and "old-1" not in html
    assert "Merge" not in html  # a viewer sees the warnings only


def test_pending_asks_the_gpu_queue_at_first_then_every_fifteen_polls(
    client, rubric, viewer, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        tasks.embed_rubric_texts, "apply_async", lambda args, queue: sent.append((args, queue))
    )
    client.force_login(viewer)
    for attempt in (0, 1, 14, 15):
        with django_capture_on_commit_callbacks(execute=True):
            client.get(panel_url(rubric, attempt))
    assert sent == [((rubric.pk, viewer.pk), "gpu")] * 2
    html = client.get(panel_url(rubric, 90)).content.decode()
    assert "no embedding worker has answered" in html and "hx-trigger" not in html
    assert len(sent) == 2 and Embedding.objects.count() == 0


def test_merge_keeps_one_in_the_draft_and_refreshes_the_editor(client, rubric, editor, eager):
    client.force_login(editor)
    html = embedded(client, rubric, eager)
    assert html.count("Merge: keep the first") == 1
    keep, drop, *rest = keys(rubric)
    response = client.post(merge_url(rubric), {"keep": keep, "drop": drop}, **HX)
    assert response.status_code == 204 and response["HX-Trigger"] == "rubric-changed"
    draft = RubricDraft.objects.get(rubric=rubric, user=editor)
    assert [c["key"] for c in draft.criteria] == [keep, *rest]
    assert len(keys(rubric)) == 4  # nothing saved until the person saves a version
    # The panel now reads the draft: the pair is gone.
    assert "data-within" not in client.get(panel_url(rubric)).content.decode()
    # Saving makes it a version, like any other edit of the draft.
    save = reverse("annotation:rubric_save", args=["alpha", rubric.pk])
    client.post(save, {"note": "merged duplicates"}, **HX)
    rubric.refresh_from_db()
    assert rubric.current_version.number == 2 and keys(rubric) == [keep, *rest]


def test_without_htmx_a_merge_redirects_to_the_page_with_a_message(client, rubric, editor):
    client.force_login(editor)
    keep, drop, *_ = keys(rubric)
    response = client.post(merge_url(rubric), {"keep": drop, "drop": keep}, follow=True)
    assert response.redirect_chain[-1][0].endswith(f"/prompts/{rubric.prompt_id}/")
    assert "Merged: one criterion removed" in response.content.decode()
    draft = RubricDraft.objects.get(rubric=rubric, user=editor)
    assert [c["key"] for c in draft.criteria][0] == drop


def test_the_report_reads_the_persons_draft(client, rubric, editor, viewer, eager):
    annotation_services.draft_edit(
        rubric=rubric, user=editor, op="add", data={"text": VIRUSES, "points": "3"}
    )
    client.force_login(editor)
    html = embedded(client, rubric, eager)
    assert html.count("data-within") == 2 and VIRUSES in html
    client.force_login(viewer)  # the viewer has no draft: the saved version
    assert client.get(panel_url(rubric)).content.decode().count("data-within") == 1


@pytest.mark.parametrize(
    ("keep", "drop", "message"),
    [
        ("", "B", "Choose the criterion to keep and the one to remove."),
        ("A", "A", "A criterion cannot be merged with itself."),
        ("A", "00000000-0000-0000-0000-000000000000", "no longer both in your draft"),
        ("A", "<script>", "no longer both in your draft"),
    ],
)
def test_bad_merge_input_is_a_clear_error_and_changes_nothing(
    client, rubric, editor, keep, drop, message
):
    a, b, *_ = keys(rubric)
    data = {"keep": {"A": a, "B": b}.get(keep, keep), "drop": {"A": a, "B": b}.get(drop, drop)}
    client.force_login(editor)
    response = client.post(merge_url(rubric), data, **HX)
    assert response.status_code == 200 and "HX-Trigger" not in response
    assert message in response.content.decode() and 'role="alert"' in response.content.decode()
    assert not RubricDraft.objects.exists() and len(keys(rubric)) == 4


def test_an_archived_rubric_shows_warnings_but_cannot_be_merged(client, rubric, editor, eager):
    annotation_services.rubric_archive(rubric=rubric, actor=editor)
    client.force_login(editor)
    assert "Merge" not in embedded(client, rubric, eager)
    a, b, *_ = keys(rubric)
    response = client.post(merge_url(rubric), {"keep": a, "drop": b}, **HX)
    assert "archived; it cannot be edited" in response.content.decode()
    assert not RubricDraft.objects.exists()


def test_who_may_see_and_merge(client, rubric, personas):
    a, b, *_ = keys(rubric)
    for name, seen, merged in [
        ("outsider", 404, 404),
        ("viewer", 200, 403),
        ("reviewer", 200, 403),
        ("editor", 200, 204),
    ]:
        client.force_login(personas[name])
        assert client.get(panel_url(rubric)).status_code == seen, name
        response = client.post(merge_url(rubric), {"keep": a, "drop": b}, **HX)
        assert response.status_code == merged, name
    assert RubricDraft.objects.get().user == personas["editor"]
    # The outsider owns another project: this rubric is not found through it either.
    client.force_login(personas["outsider"])
    elsewhere = reverse("scoring:duplicates_panel", args=["elsewhere", rubric.pk])
    assert client.get(elsewhere).status_code == 404
    elsewhere = reverse("scoring:duplicates_merge", args=["elsewhere", rubric.pk])
    assert client.post(elsewhere, {"keep": a, "drop": b}, **HX).status_code == 404
    assert len(RubricDraft.objects.all()) == 1
    client.logout()
    assert client.get(panel_url(rubric)).status_code == 302  # to the login page


def test_merge_needs_the_csrf_token(rubric, editor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    a, b, *_ = keys(rubric)
    assert client.post(merge_url(rubric), {"keep": a, "drop": b}, **HX).status_code == 403
    assert not RubricDraft.objects.exists()
    page = client.get(reverse("annotation:prompt_detail", args=["alpha", rubric.prompt_id]))
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.content.decode()).group(1)
    response = client.post(merge_url(rubric), {"keep": a, "drop": b}, HTTP_X_CSRFTOKEN=token, **HX)
    assert response.status_code == 204 and RubricDraft.objects.exists()
