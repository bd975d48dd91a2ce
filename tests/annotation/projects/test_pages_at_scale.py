"""What the fast paths of the project pages keep as they were (benchmarks/bench_pages.py):
a large project's counts stored by the worker, the prompt table paged by id, the response
sources walked on their index, the neighbours of a prompt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.prompts import selectors as prompt_selectors
from annotation.prompts.models import Prompt
from tests.factories import ProjectFactory, PromptFactory, ResponseFactory, RubricFactory


def test_a_large_projects_counts_are_stored_and_counted_again_by_the_worker(  # type: ignore[no-untyped-def]
    client, project, viewer, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.projects import selectors as project_selectors
    from annotation.projects.models import ProjectCounts

    prompt = PromptFactory(project=project)
    ResponseFactory(prompt=prompt, source="gpt-x")
    ResponseFactory(prompt=prompt, source="probe:typos")  # a judge probe's copy: not counted
    client.force_login(viewer)
    url = reverse("annotation:project_detail", args=[project.slug])
    html = client.get(url).content.decode()
    assert "<dt>Responses</dt><dd>1</dd>" in html  # small: counted live, nothing stored
    assert not ProjectCounts.objects.exists()

    monkeypatch.setattr(project_selectors, "LARGE_PROJECT", 2)
    ResponseFactory(prompt=prompt, source="gpt-y")
    html = client.get(url).content.decode()  # large: counted once, then stored
    assert "<dt>Responses</dt><dd>2</dd>" in html
    assert ProjectCounts.objects.get(project=project).counts["responses"] == 2
    ResponseFactory(prompt=prompt, source="gpt-z")
    listed = client.get(reverse("annotation:project_list")).context["projects"]
    assert [p.n_responses for p in listed] == [2]  # the stored counts, while fresh
    assert [p.n_members for p in listed] == [project.memberships.count()]  # members: live

    ProjectCounts.objects.update(counted_at=timezone.now() - timedelta(minutes=5))
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with django_capture_on_commit_callbacks(execute=True):
        html = client.get(url).content.decode()  # shows the stored ones, asks the worker
    assert "<dt>Responses</dt><dd>2</dd>" in html
    assert ProjectCounts.objects.get(project=project).counts["responses"] == 3
    assert "<dt>Responses</dt><dd>3</dd>" in client.get(url).content.decode()


def test_the_project_list_counts_every_project_in_one_query(  # type: ignore[no-untyped-def]
    client, viewer, django_assert_max_num_queries
):
    from annotation.projects.models import Membership, Role

    for n in range(3):
        other = ProjectFactory(name=f"p{n}")
        Membership.objects.create(project=other, user=viewer, role=Role.VIEWER)
        ResponseFactory(prompt=PromptFactory(project=other), source="m")
    client.force_login(viewer)
    with django_assert_max_num_queries(6):
        listed = client.get(reverse("annotation:project_list")).context["projects"]
    assert [(p.name, p.n_prompts, p.n_responses) for p in listed if p.name[0] == "p"] == [
        ("p0", 1, 1), ("p1", 1, 1), ("p2", 1, 1)
    ]  # fmt: skip


def test_a_page_of_the_table_keeps_its_order_counts_and_statuses(client, project, viewer):  # type: ignore[no-untyped-def]
    prompts = [PromptFactory(project=project) for _ in range(53)]
    for n, prompt in enumerate(prompts):
        for i in range(n % 3):
            ResponseFactory(prompt=prompt, source=f"m{i}")
    ResponseFactory(prompt=prompts[51], source="probe:typos")
    RubricFactory(project=project, prompt=prompts[52], status="approved")
    client.force_login(viewer)
    url = reverse("annotation:project_detail", args=[project.slug])
    page = client.get(url, {"page": 2}).context["page"]
    assert page.paginator.count == 53 and page.number == 2
    assert [p.pk for p in page.object_list] == [p.pk for p in prompts[50:]]
    assert [p.response_count for p in page.object_list] == [2, 0, 1]  # probes left out
    assert [p.rubric_status for p in page.object_list] == ["", "", "approved"]
    filtered = client.get(url, {"has_rubric": "yes", "page": 1}).context["page"]
    assert [p.pk for p in filtered.object_list] == [prompts[52].pk]


def test_response_sources_are_this_projects_in_order_and_probes_only_when_asked(project):  # type: ignore[no-untyped-def]
    other = ProjectFactory()
    mine, theirs = PromptFactory(project=project), PromptFactory(project=other)
    for source in ("zeta", "alpha", "probe:typos", "alpha"):
        ResponseFactory(prompt=mine, source=source)
    ResponseFactory(prompt=theirs, source="beta")  # another project's source
    assert prompt_selectors.response_sources(project=project) == ["alpha", "zeta"]
    assert prompt_selectors.response_sources(project=project, probes=True) == [
        "alpha", "probe:typos", "zeta",
    ]  # fmt: skip
    assert prompt_selectors.response_sources(project=other) == ["beta"]
    assert prompt_selectors.response_sources(project=ProjectFactory()) == []


def test_a_prompts_neighbours_are_its_projects(project):  # type: ignore[no-untyped-def]
    first = PromptFactory(project=project)
    PromptFactory(project=ProjectFactory())  # between them by id, in another project
    second = PromptFactory(project=project)
    assert prompt_selectors.prompt_neighbours(project=project, prompt=first) == (None, second)
    assert prompt_selectors.prompt_neighbours(project=project, prompt=second) == (first, None)


def test_the_review_queues_page_of_a_large_project_shows_the_stored_pair_count(  # type: ignore[no-untyped-def]
    client, project, editor, monkeypatch
):
    from annotation.projects import selectors as project_selectors
    from annotation.projects.models import ProjectCounts
    from tests.factories import PreferenceLabelFactory

    monkeypatch.setattr(project_selectors, "LARGE_PROJECT", 2)
    prompt = PromptFactory(project=project)
    PreferenceLabelFactory(prompt=prompt)
    PreferenceLabelFactory(prompt=prompt, source="expert")  # a review's label: not a pair to queue
    client.force_login(editor)
    url = reverse("annotation:review_queues", args=[project.slug])
    assert client.get(url).context["pairs"] == 1  # counted, then stored (4 responses: large)
    assert ProjectCounts.objects.get(project=project).counts["dataset_pairs"] == 1
    PreferenceLabelFactory(prompt=prompt)
    assert client.get(url).context["pairs"] == 1  # the stored count, while fresh

    # counts stored before a name was counted are counted live once and stored again
    ProjectCounts.objects.update(counts={"responses": 6, "prompts": 1})
    assert client.get(url).context["pairs"] == 2
    assert ProjectCounts.objects.get(project=project).counts["dataset_pairs"] == 2


def test_a_finished_import_counts_a_large_project_again(  # type: ignore[no-untyped-def]
    project, editor, monkeypatch, settings, tmp_path
):
    import json

    from annotation.projects import selectors as project_selectors
    from annotation.projects.models import ProjectCounts
    from annotation.prompts import import_jobs
    from tests.factories import ImportJobFactory

    monkeypatch.setattr(project_selectors, "LARGE_PROJECT", 2)
    prompt = PromptFactory(project=project)
    ResponseFactory(prompt=prompt, source="a")
    ResponseFactory(prompt=prompt, source="b")
    assert project_selectors.project_counts(project=project)["prompts"] == 1  # stored
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "up.jsonl").write_text(
        "".join(json.dumps({"id": f"n{i}", "prompt": f"Question {i}?"}) + "\n" for i in range(3))
    )
    job = ImportJobFactory(
        project=project,
        created_by=editor,
        stored_path="up.jsonl",
        file_name="up.jsonl",
        status="queued",
        report={},
        format="",
    )
    import_jobs.import_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert ProjectCounts.objects.get(project=project).counts["prompts"] == 4
    assert project_selectors.project_counts(project=project)["prompts"] == 4


@pytest.mark.parametrize("n", [0, 1, 49, 50, 51, 149, 150, 151])
def test_every_page_of_ids_is_the_same_read_forwards_or_from_the_end(project, n):  # type: ignore[no-untyped-def]
    from annotation.paging import page_of

    ids = [PromptFactory(project=project).pk for _ in range(n)]
    PromptFactory(project=ProjectFactory())  # another project's
    qs = Prompt.objects.filter(project=project).order_by("id").values_list("pk", flat=True)
    pages = max(1, -(-n // 50))
    for number in range(1, pages + 1):
        page = page_of(qs, str(number), 50)
        assert page.number == number and page.paginator.count == n
        assert not page.paginator.more
        assert list(page.object_list) == ids[(number - 1) * 50 : number * 50]
    assert page_of(qs, str(pages + 3), 50).number == pages  # past the end: the last page
    assert page_of(qs, "two", 50).number == 1 and page_of(qs, "-4", 50).number == 1


def test_a_filtered_list_is_counted_only_so_far_past_its_page(  # type: ignore[no-untyped-def]
    client, project, viewer, monkeypatch
):
    from annotation.paging import page_of
    from annotation.projects import views as project_views

    ids = [PromptFactory(project=project, external_id=f"hit-{i}").pk for i in range(12)]
    qs = Prompt.objects.filter(project=project).order_by("id").values_list("pk", flat=True)
    first = page_of(qs, "1", 2, ahead=3)  # counted up to 2 + 3 rows
    assert (first.paginator.count, first.paginator.more) == (5, True)
    assert list(first.object_list) == ids[:2] and first.has_next()
    fourth = page_of(qs, "4", 2, ahead=3)
    assert (fourth.paginator.count, fourth.paginator.more) == (11, True)
    assert list(fourth.object_list) == ids[6:8]
    last = page_of(qs, "5", 2, ahead=3)  # 13 rows asked for, 12 there: the exact count
    assert (last.paginator.count, last.paginator.more) == (12, False)
    assert list(last.object_list) == ids[8:10] and last.paginator.num_pages == 6

    monkeypatch.setattr(project_views, "PAGE_SIZE", 5)
    monkeypatch.setattr(project_views, "COUNTED_AHEAD", 3)
    client.force_login(viewer)
    url = reverse("annotation:project_detail", args=[project.slug])
    html = client.get(url, {"q": "hit"}).content.decode()
    assert "8 or more prompts" in html and "Page 1 of 2 or more" in html
    html = client.get(url, {"q": "hit", "page": 2}).content.decode()
    assert "12 prompts" in html and "Page 2 of 3<" in html and "or more" not in html
    html = client.get(url).content.decode()  # unfiltered: counted exactly
    assert "12 prompts" in html and "Page 1 of 3<" in html


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        "x" * 140,
        "x" * 141,
        "word " * 400,
        "e\u0301" * 300,  # combining marks: 300 visible characters in 600 code points
        "a" + "\u0301" * 700 + "b" * 200,  # the first 560 code points show one character
        "x" * 300 + "\u00e9" * 50,  # ASCII first, then not
        "x" * 100 + "e\u0301" * 100,
    ],
)
def test_a_rows_shortened_text_is_what_truncatechars_makes(text):  # type: ignore[no-untyped-def]
    from django.template.defaultfilters import truncatechars

    from annotation.projects.views import shortened

    assert shortened(text, 140) == truncatechars(text, 140)


def test_the_table_links_each_row_to_its_prompt(client, project, viewer):  # type: ignore[no-untyped-def]
    prompts = [PromptFactory(project=project, external_id=f"row-{i}") for i in range(3)]
    client.force_login(viewer)
    html = client.get(reverse("annotation:project_detail", args=[project.slug])).content.decode()
    for prompt in prompts:
        url = reverse("annotation:prompt_detail", args=[project.slug, prompt.pk])
        assert f'<a href="{url}">row-{prompts.index(prompt)}</a>' in html


def test_a_link_reversed_once_is_the_one_reverse_makes(project):  # type: ignore[no-untyped-def]
    from annotation.links import links

    link = links("scoring:run_response", project.slug, 7)
    for pk in (1, 42, 987654321, 10**12):
        assert link(pk) == reverse("scoring:run_response", args=[project.slug, 7, pk])
