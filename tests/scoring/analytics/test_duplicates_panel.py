"""The near-duplicates panel of the rubric editor: pending until a worker on the gpu queue
has embedded the criteria (asked at most once per rubric every 30 s, whatever the client
sends; still polling, more slowly, when the gpu workers are busy), then warnings within the
rubric (with a merge that edits the person's draft, refused on a stale page) and against the
project's other rubrics, in a bounded number of queries; who may see and merge; CSRF; bad
input changes nothing."""

from __future__ import annotations

import re
import time
import types

import numpy as np
import pytest
from django.core.cache import cache
from django.core.cache.backends import base as cache_base
from django.core.cache.backends import locmem
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.rubrics import drafts as rubric_drafts
from annotation.rubrics import services as rubric_services
from annotation.rubrics import workflow as rubric_workflow
from annotation.rubrics.models import Criterion, RubricDraft
from annotation.rubrics.services import CriterionInput
from rubricstudio.celery import app
from scoring.analytics import duplicates
from scoring.analytics import tasks as analytics_tasks
from scoring.judges.models import Embedding
from tests.factories import PromptFactory
from tests.scoring.judges.test_embeddings import DISTINCT, RAW_MILK, VIRUSES

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _no_embedding_requests_remembered():  # type: ignore[no-untyped-def]
    """The request throttle lives in the (per-process) cache: each test starts without it,
    and leaves none behind for the tests that follow (rubric ids repeat across tests)."""
    cache.clear()
    yield
    cache.clear()


def _rubric(project, editor, external_id, texts, **kwargs):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id=external_id) if external_id else None
    return rubric_services.rubric_create(
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
    rubric_workflow.rubric_archive(rubric=archived, actor=editor)
    return viruses, wide


def panel_url(rubric, attempt=None):  # type: ignore[no-untyped-def]
    url = reverse("scoring:duplicates_panel", args=[rubric.project.slug, rubric.pk])
    return url if attempt is None else f"{url}?attempt={attempt}"


def merge_url(rubric):  # type: ignore[no-untyped-def]
    return reverse("scoring:duplicates_merge", args=[rubric.project.slug, rubric.pk])


def keys(rubric):  # type: ignore[no-untyped-def]
    rows = Criterion.objects.filter(version=rubric.current_version).order_by("position")
    return [str(k) for k in rows.values_list("key", flat=True)]


def merge_forms(html: str) -> list[dict[str, str]]:
    """The hidden fields of each Merge form of the panel, as the browser would post them."""
    forms = re.findall(r'<form method="post" action="[^"]*/merge/"[^>]*>(.*?)</form>', html, re.S)
    fields = [dict(re.findall(r'name="(\w+)" value="([^"]*)"', f)) for f in forms]
    return [{k: v for k, v in f.items() if k != "csrfmiddlewaretoken"} for f in fields]


def editor_base(client, rubric) -> str:  # type: ignore[no-untyped-def]
    """What the editor's own forms send as ``base`` (its hx-vals)."""
    page = client.get(reverse("annotation:rubric_editor", args=["alpha", rubric.pk]), **HX)
    return re.search(r"hx-vals='\{\"base\": \"(\d*)\"\}'", page.content.decode()).group(1)


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


def _later(monkeypatch, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """The cache's clock, ``seconds`` ahead (for the throttle's expiry)."""
    clock = types.SimpleNamespace(time=lambda: time.time() + seconds)
    monkeypatch.setattr(cache_base, "time", clock)
    monkeypatch.setattr(locmem, "time", clock)


@pytest.fixture
def sent(monkeypatch):  # type: ignore[no-untyped-def]
    """The embedding tasks sent to the workers (not run)."""
    calls: list = []
    task = analytics_tasks.embed_rubric_texts
    monkeypatch.setattr(
        task,
        "apply_async",
        # the queue Celery sends it to (CELERY_TASK_ROUTES)
        lambda args, **options: calls.append(
            (args, app.amqp.router.route(options, task.name)["queue"].name)
        ),
    )
    return calls


def test_without_the_embedding_model_the_panel_says_not_available_and_stops_polling(
    client, rubric, viewer, eager, monkeypatch
):
    """The worker cannot load the model (the ML requirements are not installed): it says so,
    and the panel shows what to install instead of spinning; once it can, Check again goes on."""
    from scoring.judges import embeddings

    def missing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ModuleNotFoundError("No module named 'sentence_transformers'")

    monkeypatch.setattr(embeddings, "embed", missing)
    client.force_login(viewer)
    first = eager(lambda: client.get(panel_url(rubric))).content.decode()
    assert "(pending)" in first  # asked; the worker's answer comes with the next poll
    html = client.get(panel_url(rubric, 1)).content.decode()
    assert "data-unavailable" in html and "Not available:" in html
    assert "install requirements-ml.txt" in html and "sentence_transformers" in html
    assert "hx-trigger" not in html and "spinner" not in html  # no more polling
    assert f'hx-get="{panel_url(rubric)}">Check again' in html
    assert Embedding.objects.count() == 0

    monkeypatch.undo()  # the model is installed now
    cache.clear()  # the 30 s request throttle has passed
    eager(lambda: client.get(panel_url(rubric)))  # Check again: asks the worker anew
    html = client.get(panel_url(rubric, 1)).content.decode()
    assert "Not available" not in html and "pending" not in html
    assert "cosine" in html and Embedding.objects.count() == 4


def test_pending_asks_the_gpu_queue_at_first_then_every_fifteen_polls(
    client, rubric, viewer, sent, monkeypatch, django_capture_on_commit_callbacks
):
    client.force_login(viewer)
    for attempt in (0, 1, 14):
        with django_capture_on_commit_callbacks(execute=True):
            client.get(panel_url(rubric, attempt))
    assert sent == [((rubric.pk, viewer.pk), "gpu")]
    _later(monkeypatch, 31)  # the next ask, 15 polls of 2 s later
    with django_capture_on_commit_callbacks(execute=True):
        client.get(panel_url(rubric, 15))
    assert sent == [((rubric.pk, viewer.pk), "gpu")] * 2 and Embedding.objects.count() == 0


def test_embedding_requests_are_throttled_per_rubric_whatever_the_client_sends(
    client, rubric, others, viewer, editor, sent, monkeypatch, settings,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    client.force_login(viewer)
    for attempt in (0, 0, 0, 15, 30, 0):
        with django_capture_on_commit_callbacks(execute=True):
            html = client.get(panel_url(rubric, attempt)).content.decode()
        assert "(pending)" in html
    client.force_login(editor)  # another person: the same rubric, still one task
    with django_capture_on_commit_callbacks(execute=True):
        client.get(panel_url(rubric, 0))
    assert sent == [((rubric.pk, viewer.pk), "gpu")]
    viruses, _ = others  # another rubric has its own
    with django_capture_on_commit_callbacks(execute=True):
        client.get(panel_url(viruses, 0))
    assert sent[1:] == [((viruses.pk, editor.pk), "gpu")]
    # Another model files its own vectors, so it is asked for on its own.
    settings.EMBEDDING_MODEL_PATH = "/models/another"
    with django_capture_on_commit_callbacks(execute=True):
        client.get(panel_url(rubric, 0))
    assert sent[2:] == [((rubric.pk, editor.pk), "gpu")]
    settings.EMBEDDING_MODEL_PATH = ""
    # 30 s later the rubric may be asked for again, once.
    _later(monkeypatch, duplicates.REQUEST_EVERY_SECONDS + 1)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            client.get(panel_url(rubric, 0))
    assert sent[3:] == [((rubric.pk, editor.pk), "gpu")]


def test_after_three_minutes_the_panel_says_still_queued_and_polls_every_thirty_seconds(
    client, rubric, viewer, sent, django_capture_on_commit_callbacks
):
    client.force_login(viewer)
    html = client.get(panel_url(rubric, 89)).content.decode()
    assert f'hx-get="{panel_url(rubric, 90)}" hx-trigger="load delay:2s"' in html
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(panel_url(rubric, 90)).content.decode()
    assert "no embedding worker has answered" not in html and 'role="alert"' not in html
    assert "4 criteria are still queued for embedding (pending)" in html
    assert "may be busy with a scoring run" in html
    assert f'hx-get="{panel_url(rubric, 91)}" hx-trigger="load delay:30s"' in html
    assert "checks again every 30 s" in html and f'hx-get="{panel_url(rubric)}"' in html
    html = client.get(panel_url(rubric, 5000)).content.decode()
    assert f'hx-get="{panel_url(rubric, 5001)}" hx-trigger="load delay:30s"' in html
    assert len(sent) == 1  # asked at attempt 90 (a multiple of 15), not at 89 or 5000


def test_merge_keeps_one_in_the_draft_and_refreshes_the_editor(client, rubric, editor, eager):
    client.force_login(editor)
    html = embedded(client, rubric, eager)
    assert html.count("Merge: keep the first") == 1
    keep, drop, *rest = keys(rubric)
    form = merge_forms(html)[0]
    assert form == {"keep": keep, "drop": drop, "base": "1"}
    response = client.post(merge_url(rubric), form, **HX)
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


def test_the_merge_forms_send_the_base_the_editors_forms_send(client, rubric, editor, owner, eager):
    client.force_login(editor)
    html = embedded(client, rubric, eager)
    assert {f["base"] for f in merge_forms(html)} == {editor_base(client, rubric)} == {"1"}
    # With a draft on v1 while someone else saved v2: the draft's base, as in the editor.
    first, second, third, _ = keys(rubric)
    rubric_drafts.draft_edit(
        rubric=rubric, user=editor, op="update", data={"key": third, "points": "4", "base": "1"}
    )
    rubric_drafts.draft_edit(
        rubric=rubric, user=owner, op="update", data={"key": third, "text": "Is kind.", "base": "1"}
    )
    rubric_drafts.draft_save(rubric=rubric, user=owner)
    rubric.refresh_from_db()
    assert rubric.current_version.number == 2
    html = eager(lambda: client.get(panel_url(rubric))).content.decode()
    assert [f["base"] for f in merge_forms(html)] == ["1", "1"] == [editor_base(client, rubric)] * 2
    response = client.post(merge_url(rubric), merge_forms(html)[1], **HX)
    assert response.status_code == 204
    draft = RubricDraft.objects.get(rubric=rubric, user=editor)
    assert [c["key"] for c in draft.criteria] == [second, third, keys(rubric)[3]]


@pytest.mark.parametrize("htmx", [True, False])
def test_a_merge_from_a_stale_page_changes_nothing_and_says_so(
    client, rubric, editor, owner, eager, htmx
):
    """The panel showed v1; someone saved v2 since: the pair was judged on texts that may
    have changed, so nothing is merged and the person is told to look again."""
    client.force_login(editor)
    form = merge_forms(embedded(client, rubric, eager))[0]
    first, second, *_ = keys(rubric)
    rubric_drafts.draft_edit(
        rubric=rubric, user=owner, op="update", data={"key": first, "text": "Is kind.", "base": "1"}
    )
    rubric_drafts.draft_save(rubric=rubric, user=owner)
    response = client.post(merge_url(rubric), form, **(HX if htmx else {}), follow=not htmx)
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Trigger" not in response
    message = "This rubric changed since the page was loaded (it showed v1; your working copy is now on v2); nothing was changed."
    assert message in html.replace("&#x27;", "'")
    assert not RubricDraft.objects.exists()
    rubric.refresh_from_db()
    assert rubric.current_version.number == 2 and keys(rubric)[:2] == [first, second]
    if htmx:  # the fresh panel, from v2: the raw milk pair is gone with the edited text
        assert 'role="alert"' in html and "data-within" not in html


def test_a_merge_after_the_draft_was_saved_in_another_tab_changes_nothing(
    client, rubric, editor, eager
):
    """The panel showed the person's draft on v1 (with a criterion added in it); they
    saved the draft in another tab since (v2, no draft): the page is stale."""
    rubric_drafts.draft_edit(
        rubric=rubric, user=editor, op="add", data={"text": VIRUSES, "points": "3", "base": "1"}
    )
    client.force_login(editor)
    html = embedded(client, rubric, eager)
    form = merge_forms(html)[0]
    assert form["base"] == "1"
    rubric_drafts.draft_save(rubric=rubric, user=editor)
    response = client.post(merge_url(rubric), form, **HX)
    assert "changed since the page was loaded" in response.content.decode()
    assert "HX-Trigger" not in response and not RubricDraft.objects.exists()
    rubric.refresh_from_db()
    assert rubric.current_version.number == 2 and len(keys(rubric)) == 5


def test_without_htmx_a_merge_redirects_to_the_page_with_a_message(client, rubric, editor):
    client.force_login(editor)
    keep, drop, *_ = keys(rubric)
    response = client.post(merge_url(rubric), {"keep": drop, "drop": keep}, follow=True)
    assert response.redirect_chain[-1][0].endswith(f"/prompts/{rubric.prompt_id}/")
    assert "Merged: one criterion removed" in response.content.decode()
    draft = RubricDraft.objects.get(rubric=rubric, user=editor)
    assert [c["key"] for c in draft.criteria][0] == drop


def test_the_report_reads_the_persons_draft(client, rubric, editor, viewer, eager):
    rubric_drafts.draft_edit(
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
    rubric_workflow.rubric_archive(rubric=rubric, actor=editor)
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


# --- a large project: bounded queries, vectorised comparison --------------------------------


def _store(texts, vectors) -> None:  # type: ignore[no-untyped-def]
    """Stored vectors for ``texts``, as a worker would have filed them."""
    Embedding.objects.bulk_create(
        [
            Embedding(
                model=duplicates._key(),
                text_hash=duplicates.text_hash(t.strip()),
                dim=v.size,
                vector=Embedding.pack(v),
            )
            for t, v in zip(texts, vectors, strict=True)
        ],
        ignore_conflicts=True,
    )


def _units(rng, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Random unit vectors: any two have a cosine near 0."""
    rows = rng.normal(size=(n, 384)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _wide_rubrics(
    project, editor, rng, count: int, size: int, *, name: str = "Wide", embed: bool = True
) -> None:  # type: ignore[no-untyped-def]
    """``count`` project-wide rubrics of ``size`` distinct criteria each."""
    for r in range(count):
        texts = [f"{name} rubric {r}, criterion {i}." for i in range(size)]
        rubric_services.rubric_create(
            project=project,
            title=f"{name} {r}",
            author=editor,
            criteria=[CriterionInput(text=t, points=1) for t in texts],
            enforce_checks=False,
        )
        if embed:
            _store(texts, _units(rng, size))


def _own_texts(rubric) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.text for c in Criterion.objects.filter(version=rubric.current_version)]


def _vector_reads(queries) -> int:  # type: ignore[no-untyped-def]
    return sum('."vector"' in q["sql"] for q in queries)


def test_the_panel_takes_as_many_queries_for_1500_other_criteria_as_for_3(
    client, rubric, project, editor, django_assert_max_num_queries
):
    rng = np.random.default_rng(1)
    _store(_own_texts(rubric), _units(rng, 4))
    _wide_rubrics(project, editor, rng, 1, 3)
    client.force_login(editor)
    with CaptureQueriesContext(connection) as small:
        html = client.get(panel_url(rubric)).content.decode()
    assert "against the 3 criteria" in html and "pending" not in html
    _wide_rubrics(project, editor, rng, 5, 300, name="More")
    with django_assert_max_num_queries(len(small.captured_queries)):
        html = client.get(panel_url(rubric)).content.decode()
    assert "against the 1503 criteria" in html and "pending" not in html


def test_the_other_rubrics_vectors_are_read_once_this_rubrics_are_embedded(
    client, rubric, project, editor, sent
):
    rng = np.random.default_rng(2)
    _wide_rubrics(project, editor, rng, 5, 300)
    _wide_rubrics(project, editor, rng, 1, 10, name="New", embed=False)
    client.force_login(editor)
    with CaptureQueriesContext(connection) as pending:
        html = client.get(panel_url(rubric, 1)).content.decode()
    assert "Embedding 14 criteria… (pending)" in html  # 4 here and 10 there
    assert _vector_reads(pending.captured_queries) == 1  # this rubric's only
    assert "None found so far" in html

    _store(_own_texts(rubric), _units(rng, 4))
    with CaptureQueriesContext(connection) as ready:
        html = client.get(panel_url(rubric, 2)).content.decode()
    assert "Embedding 10 criteria… (pending)" in html
    assert _vector_reads(ready.captured_queries) == 2  # this rubric's, then the others'


def test_across_matches_show_the_closest_three_and_count_the_rest(client, rubric, project, editor):
    rng = np.random.default_rng(3)
    own = _own_texts(rubric)
    vectors = _units(rng, 4)
    _store(own, vectors)
    _wide_rubrics(project, editor, rng, 2, 50)
    milk = vectors[own.index(DISTINCT[1])]
    close = milk + 0.3 * _units(rng, 1)[0]
    for title in ("Old", "Mid", "New"):  # the same text in three rubrics, saved in this order
        rubric_services.rubric_create(
            project=project,
            title=title,
            author=editor,
            criteria=[CriterionInput(text="Warns against raw milk.", points=2)],
        )
    rubric_services.rubric_create(
        project=project,
        title="Close",
        author=editor,
        criteria=[CriterionInput(text="Advises against raw milk.", points=2)],
    )
    _store(
        ["Warns against raw milk.", "Advises against raw milk."],
        [milk, close / np.linalg.norm(close)],
    )
    client.force_login(editor)
    html = client.get(panel_url(rubric)).content.decode()
    assert html.count("data-across") == 1 and "and 1 more in other rubrics" in html
    group = html.split("data-across")[1]
    assert DISTINCT[1] in group
    assert re.findall(r"project-wide: (\w+)", group) == ["New", "Mid", "Old"]  # recent first
    assert re.findall(r'class="cosine">([0-9.]+)<', group) == ["1.00"] * 3
