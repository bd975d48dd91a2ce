"""The agreement page and its CSV: judge against reviewers (overall, per rubric, endpoint,
template version and criterion, trends across versions), judge against the final labels,
reviewers among themselves, undefined figures, scoping and the query bound.

The expected figures come from scikit-learn and the ``krippendorff`` package, computed on
the labels the test itself chose for each review, never read back from the page's code."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from dataclasses import dataclass, field

import krippendorff
import numpy as np
import pytest
from django.urls import reverse
from sklearn.metrics import accuracy_score, cohen_kappa_score

from annotation.reviews import queues as queue_services
from annotation.reviews import services as review_services
from annotation.reviews.models import ReviewItem
from annotation.reviews.queues import ItemInput
from annotation.rubrics.models import Criterion, RubricVersion
from tests.factories import (
    MembershipFactory,
    PromptFactory,
    ResponseFactory,
    RubricFactory,
    UserFactory,
)

LABELS = ["a", "b", "tie"]
ENDPOINT = "gpt-judge"
TEMPLATES = ("judge_pairwise-v2", "judge_pairwise-v10")


def _shown(winner: str, swapped: bool) -> str:
    """The item's a / b / tie as the letter the reviewer saw (A is item b when swapped)."""
    if winner == "tie":
        return "tie"
    return {"a": "B", "b": "A"}[winner] if swapped else {"a": "A", "b": "B"}[winner]


def _reviewer(project, name):  # type: ignore[no-untyped-def]
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role="reviewer")
    return user


@dataclass
class Study:
    """What the test decided: each item's judge verdict and the reviews it committed."""

    queue: object
    judge: dict[int, str]  # item id → the judge's winner
    template: dict[int, str]
    version: dict[int, int]  # item id → rubric version number
    judge_criteria: dict[int, dict[str, str]]
    keys: list[str]  # the rubric's criterion keys, in order
    reviews: list[tuple[int, str, str]] = field(default_factory=list)  # item, reviewer, winner
    marks: list[tuple[int, str, str]] = field(default_factory=list)  # item, criterion key, mark

    def judge_and_human(self, keep=lambda item: True):  # type: ignore[no-untyped-def]
        pairs = [(self.judge[i], w) for i, _, w in self.reviews if keep(i)]
        return [j for j, _ in pairs], [h for _, h in pairs]


def _review_all(queue, reviewer, study, rng, limit=None):  # type: ignore[no-untyped-def]
    """The reviewer takes items until none is left (or ``limit``), each decided by ``rng``:
    mostly the judge's verdict, else any label; marks criteria likewise."""
    done = 0
    while (limit is None or done < limit) and (
        slot := review_services.slot_next(queue=queue, reviewer=reviewer)
    ) is not None:
        item_id = slot.item_id
        winner = study.judge[item_id] if rng.random() < 0.6 else rng.choice(LABELS)
        marks = {}
        for n, (key, judged) in enumerate(sorted(study.judge_criteria[item_id].items())):
            if n == 0 or item_id % 3 == 0:
                marks[key] = judged if rng.random() < 0.5 else rng.choice(LABELS)
        review_services.review_commit(
            slot=slot,
            reviewer=reviewer,
            shown=_shown(winner, slot.swapped),
            criteria={k: _shown(v, slot.swapped) for k, v in marks.items()},
            confidence=rng.randint(1, 5),
            seconds=12.5,
        )
        study.reviews.append((item_id, reviewer.username, winner))
        study.marks.extend((item_id, k, v) for k, v in marks.items())
        done += 1


def _build(project, owner, reviewers, *, n_items=30, seed=3, name="Run 1", limits=None):  # type: ignore[no-untyped-def]
    """A queue of ``n_items`` pairs under two versions of a new rubric and two template
    versions, overlap 2, reviewed by ``reviewers`` (each up to its limit)."""
    rng = random.Random(seed)
    rubric = RubricFactory(project=project, title="Triage rubric" if name == "Run 1" else name)
    v1 = rubric.current_version
    v2 = RubricVersion.objects.create(rubric=rubric, number=2, parent=v1)
    for c in v1.criteria.all():
        text = "Is correct and complete" if c.text == "Is correct" else c.text
        Criterion.objects.create(
            version=v2, key=c.key, position=c.position, text=text, points=c.points
        )
    keys = [str(k) for k in v1.criteria.order_by("position").values_list("key", flat=True)]
    inputs, plan = [], []
    for i in range(n_items):
        prompt = PromptFactory(project=project, external_id=f"{name}/case-{i}")
        a = ResponseFactory(prompt=prompt, source="model-a")
        b = ResponseFactory(prompt=prompt, source="model-b")
        winner = rng.choice(LABELS)
        verdicts = {key: rng.choice(LABELS) for key in keys}
        version = v1 if i % 2 else v2
        template = TEMPLATES[i % 3 == 0]
        judge = {
            "winner": winner, "consistent": i % 4 != 0, "probability": None,
            "criteria": verdicts, "orders": [], "endpoint": ENDPOINT, "template_version": template,
        }  # fmt: skip
        inputs.append(ItemInput(prompt.pk, a.pk, b.pk, judge=judge, rubric_version_id=version.pk))
        plan.append((winner, template, version.number, verdicts))
    queue = queue_services.review_queue_create(
        project=project, actor=owner, name=name, origin="run", items=inputs, overlap=2, seed=1
    )
    items = list(ReviewItem.objects.filter(queue=queue).order_by("position"))
    study = Study(
        queue,
        judge={item.pk: plan[item.position][0] for item in items},
        template={item.pk: plan[item.position][1] for item in items},
        version={item.pk: plan[item.position][2] for item in items},
        judge_criteria={item.pk: plan[item.position][3] for item in items},
        keys=keys,
    )
    for n, reviewer in enumerate(reviewers):
        _review_all(queue, reviewer, study, random.Random(seed * 100 + n), (limits or {}).get(n))
    return study


@pytest.fixture
def study(project, owner, reviewer):  # type: ignore[no-untyped-def]
    """30 items, overlap 2, three reviewers: "reviewer" takes 20 items, "second" all 30 and
    "third" the 10 left, so α and the pairs see missing ratings (and one pair shares no
    item); ties are among the labels."""
    second, third = _reviewer(project, "second"), _reviewer(project, "third")
    study = _build(project, owner, [reviewer, second, third], limits={0: 20})
    assert Counter(name for _, name, _ in study.reviews) == {
        "reviewer": 20, "second": 30, "third": 10,
    }  # fmt: skip
    return study


def _page(client, user, project, **params):  # type: ignore[no-untyped-def]
    client.force_login(user)
    response = client.get(reverse("scoring:agreement", args=[project.slug]), params)
    assert response.status_code == 200
    return response


def test_judge_against_reviewers_equals_scikit_learn(client, project, viewer, study):  # type: ignore[no-untyped-def]
    response = _page(client, viewer, project)
    report = response.context["report"]
    judge, human = study.judge_and_human()
    assert report.overall.n == 60 and report.overall.n_items == 30
    assert report.overall.accuracy.value == pytest.approx(accuracy_score(human, judge))
    assert report.overall.kappa.value == pytest.approx(cohen_kappa_score(judge, human))
    counts = Counter(zip(judge, human, strict=True))
    assert counts[("tie", "tie")] + counts[("a", "tie")] > 0  # ties really are in the data
    for x in LABELS:
        for y in LABELS:
            assert report.overall.matrix.count(x, y) == counts[(x, y)]
    html = response.content.decode()
    assert f"{report.overall.kappa.value:.3f}" in html
    assert f"<strong>{counts[('tie', 'tie')]}</strong>" in html  # the diagonal, ties included

    # One rubric, one endpoint: the breakdowns hold every review.
    assert [(c.name, c.n, c.n_items) for c in report.by_rubric] == [("Triage rubric", 60, 30)]
    assert [(c.name, c.n) for c in report.by_endpoint] == [(ENDPOINT, 60)]
    # Template versions in natural order (v2 before v10), each against scikit-learn.
    assert [c.name for c in report.by_template] == list(TEMPLATES)
    for row in report.by_template:
        j, h = study.judge_and_human(lambda i, name=row.name: study.template[i] == name)
        assert row.n == len(j)
        assert row.accuracy.value == pytest.approx(accuracy_score(h, j))
        assert row.kappa.value == pytest.approx(cohen_kappa_score(j, h))


def test_trend_across_rubric_and_template_versions(client, project, viewer, study):  # type: ignore[no-untyped-def]
    report = _page(client, viewer, project).context["report"]
    assert [c.name for c in report.by_rubric_version] == ["Triage rubric v1", "Triage rubric v2"]
    chart = report.chart
    assert chart["versions"]["labels"] == ["v1", "v2"]
    (series,) = chart["versions"]["series"]
    for n, number in enumerate((1, 2)):
        j, h = study.judge_and_human(lambda i, number=number: study.version[i] == number)
        assert series["n"][n] == len(j)
        assert series["accuracy"][n] == pytest.approx(accuracy_score(h, j))
        assert series["kappa"][n] == pytest.approx(cohen_kappa_score(j, h))
    assert chart["templates"]["labels"] == list(TEMPLATES)
    assert chart["templates"]["n"] == [c.n for c in report.by_template]


def test_per_criterion_uses_the_marks_and_names_the_criterion(client, project, viewer, study):  # type: ignore[no-untyped-def]
    response = _page(client, viewer, project)
    report = response.context["report"]
    by_text = {c.name: c for c in report.by_criterion}
    # The first key's text changed in v2: the newest wording names it.
    assert set(by_text) == {"Is correct and complete", "Is rude"}
    assert by_text["Is correct and complete"].detail == "Triage rubric v2"
    for key, text in zip(study.keys, ("Is correct and complete", "Is rude"), strict=True):
        marks = [(study.judge_criteria[i][key], m) for i, k, m in study.marks if k == key]
        j, h = [x for x, _ in marks], [y for _, y in marks]
        assert by_text[text].n == len(marks) > 0
        assert by_text[text].accuracy.value == pytest.approx(accuracy_score(h, j))
        assert by_text[text].kappa.value == pytest.approx(cohen_kappa_score(j, h))
    assert "Is correct and complete" in response.content.decode()


def test_judge_against_final_labels(client, project, owner, viewer, study):  # type: ignore[no-untyped-def]
    disputed = [
        item for item in ReviewItem.objects.filter(queue=study.queue, final="").order_by("pk")
    ]
    assert disputed, "the seeded reviews disagree on some items"
    for item in disputed[:3]:
        review_services.item_adjudicate(item=item, actor=owner, winner="tie")
    finals = dict(ReviewItem.objects.exclude(final="").values_list("pk", "final"))
    report = _page(client, viewer, project).context["report"]
    judge = [study.judge[i] for i in finals]
    final = list(finals.values())
    assert report.final.n == report.final.n_items == len(finals)
    assert report.final.accuracy.value == pytest.approx(accuracy_score(final, judge))
    assert report.final.kappa.value == pytest.approx(cohen_kappa_score(judge, final))
    assert report.final.matrix.count(study.judge[disputed[0].pk], "tie") >= 1


def test_reviewers_among_themselves_equal_scikit_learn_and_krippendorff(  # type: ignore[no-untyped-def]
    client, project, viewer, study
):
    report = _page(client, viewer, project).context["report"]
    (humans,) = report.humans
    ratings: dict[str, dict[int, str]] = {}
    for item, name, winner in study.reviews:
        ratings.setdefault(name, {})[item] = winner
    names = sorted(ratings)
    items = sorted(study.judge)
    code = {label: n for n, label in enumerate(LABELS)}
    data = np.array(
        [[code[ratings[r][i]] if i in ratings[r] else np.nan for i in items] for r in names]
    )
    assert np.isnan(data).sum() == 30  # each item misses one of the three reviewers
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert humans.alpha.value == pytest.approx(expected)
    assert humans.summary.n_pairable_items == 30
    assert [(p.rater_a, p.rater_b, p.n_items) for p in humans.pairs] == [
        ("reviewer", "second", 20), ("reviewer", "third", 0), ("second", "third", 10),
    ]  # fmt: skip
    for pair in humans.pairs:
        common = sorted(set(ratings[pair.rater_a]) & set(ratings[pair.rater_b]))
        if not common:
            assert pair.kappa.value is None and "no item in common" in pair.kappa.why
            continue
        x = [ratings[pair.rater_a][i] for i in common]
        y = [ratings[pair.rater_b][i] for i in common]
        assert pair.agreement.value == pytest.approx(accuracy_score(x, y))
        assert pair.kappa.value == pytest.approx(cohen_kappa_score(x, y))


def test_undefined_figures_show_a_dash_with_the_reason(client, project, owner, viewer, reviewer):  # type: ignore[no-untyped-def]
    inputs = []
    for i in range(4):
        prompt = PromptFactory(project=project, external_id=f"same-{i}")
        a, b = ResponseFactory(prompt=prompt), ResponseFactory(prompt=prompt, source="model-b")
        inputs.append(ItemInput(prompt.pk, a.pk, b.pk, judge={"winner": "a"}))
    queue = queue_services.review_queue_create(
        project=project, actor=owner, name="One reviewer", origin="labels", items=inputs,
        overlap=1, seed=1,
    )  # fmt: skip
    while (slot := review_services.slot_next(queue=queue, reviewer=reviewer)) is not None:
        review_services.review_commit(slot=slot, reviewer=reviewer, shown=_shown("a", slot.swapped))
    response = _page(client, viewer, project, queue=queue.pk)
    report = response.context["report"]
    assert report.overall.accuracy.value == 1.0 and report.overall.n == 4
    assert report.overall.kappa.value is None  # everybody said "a": κ is 0/0
    assert report.humans[0].alpha.value is None and report.humans[0].summary.n_pairable_items == 0
    html = response.content.decode()
    assert 'title="Undefined: the judge and the reviewers all said “a” (4 of 4)' in html
    assert 'title="No item has two reviews yet' in html
    assert "One reviewer only: no pair to compare." in html
    # The queue was made from imported pairs: the reference is the dataset's label.
    assert "Dataset label vs humans" in html and "Judge vs humans" not in html
    assert 'id="kappa-meaning"' in html and "0 for what chance alone gives" in html


def test_the_queue_filter_narrows_the_figures(client, project, owner, viewer, reviewer, study):  # type: ignore[no-untyped-def]
    other = _build(project, owner, [reviewer], n_items=4, seed=9, name="Run 2")
    everything = _page(client, viewer, project).context["report"]
    page = _page(client, viewer, project, queue=other.queue.pk)
    only = page.context["report"]
    assert "Judge vs humans" in page.content.decode()  # a queue made from a pairwise run
    assert everything.n_reviews == 64 and len(everything.humans) == 2
    assert only.n_reviews == 4 and [h.queue.pk for h in only.humans] == [other.queue.pk]
    j, h = other.judge_and_human()
    assert only.overall.accuracy.value == pytest.approx(accuracy_score(h, j))


def _csv(client, user, project, **params):  # type: ignore[no-untyped-def]
    client.force_login(user)
    response = client.get(reverse("scoring:agreement_csv", args=[project.slug]), params)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_has_one_row_per_review(client, project, editor, study):  # type: ignore[no-untyped-def]
    rows = _csv(client, editor, project)
    assert len(rows) == 60
    assert sorted((int(r["item_id"]), r["reviewer"], r["human_winner"]) for r in rows) == sorted(
        study.reviews
    )
    item = ReviewItem.objects.select_related("prompt", "response_a", "rubric_version").get(
        pk=int(rows[0]["item_id"])
    )
    row = rows[0]
    assert row["queue"] == "Run 1" and row["queue_id"] == str(study.queue.pk)
    assert row["prompt_external_id"] == item.prompt.external_id
    assert row["response_a_id"] == str(item.response_a_id)
    assert row["response_a_source"] == "model-a" and row["response_b_source"] == "model-b"
    assert row["rubric_id"] == str(item.rubric_version.rubric_id)
    assert row["rubric_version"] == str(item.rubric_version.number)
    assert row["judge_endpoint"] == ENDPOINT
    assert row["template_version"] == study.template[item.pk]
    assert row["judge_winner"] == study.judge[item.pk]
    assert row["judge_consistent"] == ("true" if item.position % 4 else "false")
    assert row["judge_probability"] == ""
    assert row["seconds"] == "12.5" and row["confidence"] in {"1", "2", "3", "4", "5"}
    assert row["judge_wrong"] == "false" and row["rubric_problem"] == "false"
    assert row["final"] == item.final and row["final_source"] == item.final_source


def test_csv_defuses_formulas_in_text_cells(client, project, owner, editor, reviewer):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(project=project, external_id='=HYPERLINK("http://x","y")')
    a = ResponseFactory(prompt=prompt, source="+cmd|' /C calc'!A0")
    b = ResponseFactory(prompt=prompt, source="-2+3")
    queue = queue_services.review_queue_create(
        project=project, actor=owner, name="@SUM(1,1)", origin="run", overlap=1, seed=1,
        items=[ItemInput(prompt.pk, a.pk, b.pk, judge={"winner": "b", "endpoint": "\tjudge"})],
    )  # fmt: skip
    slot = review_services.slot_next(queue=queue, reviewer=reviewer)
    review_services.review_commit(slot=slot, reviewer=reviewer, shown="tie")
    (row,) = _csv(client, editor, project, queue=queue.pk)
    assert row["queue"] == "'@SUM(1,1)"
    assert row["prompt_external_id"] == '\'=HYPERLINK("http://x","y")'
    assert row["response_a_source"] == "'+cmd|' /C calc'!A0"
    assert row["response_b_source"] == "'-2+3"
    assert row["judge_endpoint"] == "'\tjudge"
    assert row["human_winner"] == "tie" and row["judge_winner"] == "b"


def test_who_may_see_the_figures(client, project, viewer, editor, outsider, study):  # type: ignore[no-untyped-def]
    page = reverse("scoring:agreement", args=[project.slug])
    download = reverse("scoring:agreement_csv", args=[project.slug])
    for url in (page, download):
        anonymous = client.get(url)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    client.force_login(outsider)
    assert client.get(page).status_code == 404
    assert client.get(download).status_code == 404
    client.force_login(viewer)
    response = client.get(page)
    assert response.status_code == 200
    assert f'href="{page}"' in response.content.decode()  # the Agreement tab
    # Figures for viewers; per-item judge verdicts (the CSV) only for editors and owners,
    # so that a reviewer cannot read the judge's verdict on a pair before reviewing it.
    assert download not in response.content.decode()
    assert client.get(download).status_code == 403
    client.force_login(editor)
    assert download in client.get(page).content.decode()
    assert client.get(download).status_code == 200
    # A queue of another project, or no queue at all, is a 404 like a stranger's project.
    other = _build(outsider.memberships.get().project, outsider, [], n_items=1, name="Theirs").queue
    for queue in (other.pk, 999999, "x"):
        assert client.get(page, {"queue": queue}).status_code == 404
        assert client.get(download, {"queue": queue}).status_code == 404


def test_queries_are_bounded(
    client, project, owner, viewer, reviewer, django_assert_max_num_queries
):  # type: ignore[no-untyped-def]
    second = _reviewer(project, "second")
    study = _build(project, owner, [reviewer, second])
    assert len(study.reviews) == 60  # 30 items × 2 reviews
    client.force_login(viewer)
    # Session, user, project, role; queues; items, their reviews, criteria texts.
    with django_assert_max_num_queries(8):
        response = client.get(reverse("scoring:agreement", args=[project.slug]))
    assert response.context["report"].n_reviews == 60
    client.force_login(owner)
    with django_assert_max_num_queries(5):  # session, user, project, role; the reviews
        response = client.get(reverse("scoring:agreement_csv", args=[project.slug]))
        body = b"".join(response.streaming_content)
    assert body.count(b"\n") == 61


def test_a_large_projects_report_is_kept_and_computed_again_by_the_worker(  # type: ignore[no-untyped-def]
    client, project, owner, viewer, reviewer, outsider, settings, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from datetime import timedelta

    from django.utils import timezone

    from annotation.reviews import snapshots
    from annotation.reviews.models import AgreementSnapshot

    second = _reviewer(project, "second")
    study = _build(project, owner, [reviewer, second], n_items=6)
    client.force_login(viewer)
    url = reverse("scoring:agreement", args=[project.slug])
    live = client.get(url).content.decode()  # small: computed for the request, nothing kept
    assert not AgreementSnapshot.objects.exists()

    monkeypatch.setattr(snapshots, "LARGE_ITEMS", 6)
    kept = client.get(url).content.decode()  # large: computed, rendered and kept
    snapshot = AgreementSnapshot.objects.get()
    assert snapshot.n_reviews == len(study.reviews) and 'id="agreement-as-of"' in kept

    def report(html: str) -> str:
        return html[html.index('<dl class="stats" id="agreement-stats">') : html.index("</main>")]

    assert report(live).strip() in kept  # the same report
    assert "agreement-chart.js" in kept

    queue = ReviewItem.objects.first().queue  # type: ignore[union-attr]
    item = queue.items.exclude(reviews__reviewer=owner).first()
    ReviewItem.objects.filter(pk=item.pk).update(final="a")  # a change the kept one misses
    assert report(client.get(url).content.decode()) == report(kept)  # fresh: kept, as it is
    AgreementSnapshot.objects.update(computed_at=timezone.now() - timedelta(minutes=5))
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        client.get(url)  # shown as kept, and the worker asked to compute it again
    assert AgreementSnapshot.objects.get().computed_at > timezone.now() - timedelta(minutes=1)
    client.force_login(outsider)
    assert client.get(url).status_code == 404
