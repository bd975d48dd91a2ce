"""Runs graded by an OpenAI-compatible endpoint read for P(yes) from logprobs, against the
fake server: the stored P(yes), verdicts and expected scores equal the local judge's rule
applied to the scripted probabilities; every request is one token at temperature 0 with
``logprobs`` and ``top_logprobs=20`` and carries the local template's messages; no answer
among the tokens is a failed judgment (never "not met"); the fake's own judge agrees with
the JSON judge; what such an endpoint cannot do is a clear error; the Judges page and the
API add one."""

from __future__ import annotations

import math

import pytest
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.rubrics import services as rubric_services
from annotation.rubrics.services import CriterionInput
from scoring.coauthoring import services as coauthor_services
from scoring.engine.judging import JudgeCriterion
from scoring.judges import services as judge_services
from scoring.judges.local.prompting import (
    criterion_messages,
    criterion_pieces,
    pairwise_messages,
    pairwise_pieces,
)
from scoring.runs import planning
from scoring.runs import services as run_services
from scoring.runs.models import Judgment, Run
from scoring.runs.results import run_results
from tests.factories import PromptFactory, ResponseFactory

CRITERIA = [
    ("Advises rest and fluids.", 5),
    ("Names red-flag symptoms.", 3),
    ("Gives an unsafe dose.", -6),
]
# The first token's distribution the fake serves for each criterion: several spellings of
# each answer, and tokens that answer nothing.
SCRIPT = {
    "Advises rest and fluids.": [(" Yes", 0.5), ("Yes", 0.2), (" No", 0.1), ("no", 0.05),
                                 ("The", 0.1)],
    "Names red-flag symptoms.": [(" No", 0.6), ("yes", 0.15), (" yes", 0.05), ("I", 0.1),
                                 ("\nYes", 0.05)],
    "Gives an unsafe dose.": [("No", 0.4), ("NO", 0.1), (" Yes", 0.4), ("YES.", 0.05)],
}  # fmt: skip
# The local judge's answer spellings, written out: the word, bare or after one space.
YES_SPELLINGS = {"yes", " yes", "Yes", " Yes", "YES", " YES"}
NO_SPELLINGS = {"no", " no", "No", " No", "NO", " NO"}


def scripted(pairs: list[tuple[str, float]]) -> list[dict[str, object]]:
    return [{"token": t, "logprob": math.log(p)} for t, p in pairs]


def p_yes_by_hand(pairs: list[tuple[str, float]]) -> tuple[float, float]:
    """P(yes) and the answers' mass, as the local judge defines them."""
    yes = sum(p for t, p in pairs if t in YES_SPELLINGS)
    no = sum(p for t, p in pairs if t in NO_SPELLINGS)
    return yes / (yes + no), yes + no


def criterion_rule(text: str, pairs: list[tuple[str, float]]) -> dict[str, object]:
    return {
        "pattern": r"<<<CRITERION [0-9a-f]{16}>>>\n\[[^\]]*\] " + text.replace(".", r"\."),
        "regex": True,
        "top_logprobs": scripted(pairs),
    }


@pytest.fixture
def logprob_endpoint(project, owner, fake_llm):  # type: ignore[no-untyped-def]
    return judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "vllm fleet",
            "backend": "openai_logprobs",
            "base_url": fake_llm.url + "/v1",
            "model": "fake-judge",
            "threshold": 0.5,
            "max_concurrency": 8,
            "price_input_per_m": 1.0,
            "price_output_per_m": 4.0,
        },
    )


def rubric_project(project, editor, prompts=3, responses=3, criteria=CRITERIA):  # type: ignore[no-untyped-def]
    rubric_services.rubric_create(
        project=project,
        title="Every answer",
        author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in criteria],
    )
    for p in range(prompts):
        prompt = PromptFactory(project=project)
        for r in range(responses):
            ResponseFactory(
                prompt=prompt, source=f"model-{r}", content=f"Answer {p}/{r}: " + "ok " * r
            )


def launch(eager, project, editor, endpoint, **options):  # type: ignore[no-untyped-def]
    run = eager(
        lambda: run_services.run_create(project=project, actor=editor, endpoint=endpoint, **options)
    )
    run.refresh_from_db()
    return run


def test_scores_equal_the_local_rule_on_the_scripted_probabilities(
    project, editor, viewer, logprob_endpoint, fake_llm, eager, client
):
    rubric_project(project, editor)
    fake_llm.configure(logprob_rules=[criterion_rule(t, SCRIPT[t]) for t, _ in CRITERIA])
    run = launch(eager, project, editor, logprob_endpoint, mode="per_criterion")
    assert (run.status, run.done, run.failed, run.total) == ("done", 27, 0, 27)
    assert run.reads_logprobs and run.reads_probabilities and not run.is_local
    assert run.template_version == "logprobs+local-criterion-v1"
    assert fake_llm.stats()["requests"] == run.calls == 27  # one call per criterion
    assert run.completion_tokens == 27 and run.cost > 0  # billed as any call

    by_hand = {t: p_yes_by_hand(SCRIPT[t]) for t, _ in CRITERIA}
    # The local judge's own reading code, given the same two summed log-probabilities.
    torch = pytest.importorskip("torch")
    from scoring.judges.local.judge import LocalJudge

    for text, (p, _) in by_hand.items():
        yes = sum(q for t, q in SCRIPT[text] if t in YES_SPELLINGS)
        no = sum(q for t, q in SCRIPT[text] if t in NO_SPELLINGS)
        logprobs = torch.tensor([[math.log(yes), math.log(no)]], dtype=torch.float64)
        (local,) = LocalJudge._readings(logprobs)
        assert local.probability == pytest.approx(p, abs=1e-12)

    results = run_results(run, with_verdicts=True)
    assert len(results.responses) == 9
    positive = sum(p for _, p in CRITERIA if p > 0)
    for row in results.responses:
        for criterion, judgment in row.verdicts:
            p, mass = by_hand[criterion["text"]]
            assert judgment.probability == pytest.approx(p, abs=1e-12)
            assert judgment.met is (p >= 0.5)
            assert judgment.detail["mass"] == pytest.approx(mass, abs=1e-6)
            assert judgment.calls == 1 and not judgment.error
        expected = sum(points * by_hand[t][0] for t, points in CRITERIA) / positive
        score = sum(points for t, points in CRITERIA if by_hand[t][0] >= 0.5) / positive
        assert row.expected == pytest.approx(expected, abs=1e-12)
        assert row.score == pytest.approx(score, abs=1e-12)
    (source, *_) = results.sources
    assert source.mean == pytest.approx(min(max(score, 0.0), 1.0), abs=1e-12)

    # Shown as a local judge's are: the expected score column and each verdict's P(yes).
    client.force_login(viewer)
    page = client.get(reverse("scoring:run", args=[project.slug, run.pk])).content.decode()
    assert "Expected score" in page
    one = Judgment.objects.filter(created_by_run=run).first()
    detail = client.get(
        reverse("scoring:run_response", args=[project.slug, run.pk, one.response_id])
    ).content.decode()
    assert f"P(yes) {one.probability:.3f}" in detail

    # A re-run with the same endpoint and inputs reuses every judgment and calls nothing.
    fake_llm.reset()
    again = launch(eager, project, editor, logprob_endpoint, mode="per_criterion")
    assert (again.done, again.reused, fake_llm.stats()["requests"]) == (27, 27, 0)


def test_each_request_is_one_token_with_logprobs_and_the_local_templates_messages(
    project, editor, logprob_endpoint, fake_llm, eager, tiny_chat_model_dir
):
    rubric_project(project, editor, prompts=1, responses=1)
    run = launch(eager, project, editor, logprob_endpoint, mode="per_criterion")
    assert run.status == "done"
    requests = fake_llm.recent_requests()
    assert len(requests) == 3
    for body in requests:
        assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 20, 1)
        assert body["temperature"] == 0.0 and body["model"] == "fake-judge"
        assert "response_format" not in body
    response = project.prompts.get().responses.get()
    criteria = [
        JudgeCriterion(1, c.text, c.points, c.category)
        for c in project.rubrics.get().current_version.criteria.order_by("position")
    ]
    wanted = [
        criterion_messages(response.prompt.messages, response.content, [c])[0] for c in criteria
    ]
    assert sorted(map(str, (b["messages"] for b in requests))) == sorted(map(str, wanted))
    # Those messages are what the local judge reads: its chat template over them gives the
    # text of its prompt (prefix + the criterion's suffix).
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model_dir)
    pieces = criterion_pieces(tokenizer, response.prompt.messages, response.content, criteria)
    for messages, suffix in zip(
        criterion_messages(response.prompt.messages, response.content, criteria),
        pieces.suffixes,
        strict=True,
    ):
        assert [m["role"] for m in messages] == ["system", "user"]
        assert messages[1]["content"].endswith("Answer yes or no.")
        templated = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert tokenizer.decode(pieces.prefix + suffix) == templated
    pair = pairwise_messages(response.prompt.messages, "First.", "Second.", criteria)
    pair_pieces = pairwise_pieces(tokenizer, response.prompt.messages, "First.", "Second.",
                                  criteria)  # fmt: skip
    assert len(pair) == len(pair_pieces.suffixes) == 1 + len(criteria)
    for messages, suffix in zip(pair, pair_pieces.suffixes, strict=True):
        assert messages[1]["content"].endswith("Answer A or B.")
        templated = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert tokenizer.decode(pair_pieces.prefix + suffix) == templated


def test_pairwise_reads_p_a_for_the_rubric_and_each_criterion_in_both_orders(
    project, editor, logprob_endpoint, fake_llm, eager, client
):
    rubric_services.rubric_create(
        project=project, title="r", author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in CRITERIA],
    )  # fmt: skip
    prompt = PromptFactory(project=project)
    alpha = ResponseFactory(prompt=prompt, source="alpha", content="Alpha: rest and fluids.")
    ResponseFactory(prompt=prompt, source="beta", content="Beta: take ten pills.")
    first_is = r"<<<RESPONSE A [0-9a-f]{{16}}>>>\n{}[\s\S]*<<<RUBRIC "
    fake_llm.configure(
        logprob_rules=[
            {"pattern": first_is.format("Alpha"), "regex": True,
             "top_logprobs": scripted([(" A", 0.5), ("A", 0.2), (" B", 0.3)])},
            {"pattern": first_is.format("Beta"), "regex": True,
             "top_logprobs": scripted([(" B", 0.6), ("A", 0.3), ("Sure", 0.1)])},
            {"pattern": "<<<CRITERION", "top_logprobs": scripted([("A", 0.4), ("B", 0.4)])},
        ]
    )  # fmt: skip
    run = launch(eager, project, editor, logprob_endpoint, mode="pairwise")
    assert (run.status, run.failed, run.total) == ("done", 0, 2)
    assert run.template_version == "logprobs+local-pairwise-v1"
    assert fake_llm.stats()["requests"] == run.calls == 2 * (1 + len(CRITERIA))
    (pair,) = run_results(run).pairs
    p_alpha_first, p_beta_first = 0.7 / 1.0, 0.3 / 0.9  # P(A) in each order
    p_alpha = (p_alpha_first + 1 - p_beta_first) / 2
    expected = p_alpha if pair.a == alpha else 1 - p_alpha
    assert pair.probability == pytest.approx(expected, abs=1e-12)
    assert pair.consistent and pair.winner == ("a" if pair.a == alpha else "b")
    for judgment in Judgment.objects.filter(created_by_run=run):
        assert judgment.detail["criteria"] == {"1": "tie", "2": "tie", "3": "tie"}
        assert judgment.detail["criteria_p"] == {"1": 0.5, "2": 0.5, "3": 0.5}
        assert judgment.calls == 1 + len(CRITERIA)
    client.force_login(editor)
    page = client.get(reverse("scoring:run", args=[project.slug, run.pk])).content.decode()
    assert "P(A better)" in page


def test_no_answer_among_the_tokens_is_a_failure_never_not_met(
    project, editor, logprob_endpoint, fake_llm, eager
):
    rubric_project(project, editor, prompts=1, responses=2)
    unanswered = [("Sure", 0.7), ("I", 0.2), ("\nNo", 0.1)]
    rules = [criterion_rule(t, SCRIPT[t]) for t, _ in CRITERIA]
    fake_llm.configure(logprob_rules=[criterion_rule(CRITERIA[2][0], unanswered), *rules])
    run = launch(eager, project, editor, logprob_endpoint, mode="per_criterion")
    assert (run.status, run.done, run.failed) == ("done", 4, 2)
    failed = Judgment.objects.exclude(error="")
    assert failed.count() == 2
    for judgment in failed:
        assert judgment.met is None and judgment.probability is None
        assert judgment.error.startswith("no answer: neither yes/no answer is among the 3")
        assert "'Sure'" in judgment.error
        assert judgment.calls == 1  # the call was billed
    assert all(r.score is None and r.expected is None for r in run_results(run).responses)

    # The server answers now: "retry failed" completes the run.
    fake_llm.configure(logprob_rules=rules)
    eager(lambda: run_services.run_retry_failed(run=run, actor=editor))
    run.refresh_from_db()
    assert (run.status, run.failed) == ("done", 0)
    assert all(r.score is not None for r in run_results(run).responses)


def test_a_server_that_sends_no_logprobs_fails_the_judgments_clearly(
    project, editor, logprob_endpoint, fake_llm, eager
):
    rubric_project(project, editor, prompts=1, responses=1)
    fake_llm.configure(rate_malformed=1.0)  # the fake then answers without logprobs
    run = launch(eager, project, editor, logprob_endpoint, mode="per_criterion")
    assert run.failed == 3 and run.calls == 3
    errors = set(Judgment.objects.values_list("error", flat=True))
    assert errors == {
        "malformed: the endpoint sent no top_logprobs for the answer token "
        "(it must support logprobs and top_logprobs)"
    }


def test_the_fakes_own_probabilities_agree_with_its_json_verdicts(
    project, owner, editor, logprob_endpoint, fake_llm, eager
):
    """Without scripts the fake judges like the offline JSON judge: P(yes) ≥ ½ exactly
    where that judge says "met", and the pair it prefers gets P(A) above ½."""
    criteria = [("Advises rest and fluids", 5), ("Mentions fever or stiff neck", 3),
                ("Recommends aspirin overdose", -6)]  # fmt: skip
    rubric_services.rubric_create(
        project=project, title="r", author=editor,
        criteria=[CriterionInput(text=t, points=p) for t, p in criteria],
    )  # fmt: skip
    prompt = PromptFactory(project=project)
    for source, content in (
        ("good", "Rest, drink fluids, and see a doctor for fever or a stiff neck."),
        ("bad", "Take an aspirin overdose; rest is for the weak."),
        ("vague", "It depends."),
    ):
        ResponseFactory(prompt=prompt, source=source, content=content)
    json_judge = judge_services.endpoint_save(
        project=project, actor=owner,
        data={"name": "json", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )  # fmt: skip
    by_probability = launch(eager, project, editor, logprob_endpoint, mode="per_criterion")
    by_json = launch(eager, project, editor, json_judge, mode="per_criterion")
    assert by_probability.failed == by_json.failed == 0

    def verdicts(run):  # type: ignore[no-untyped-def]
        return {
            (j.response_id, str(j.criterion_key)): j
            for j in Judgment.objects.filter(created_by_run=run)
        }

    read, written = verdicts(by_probability), verdicts(by_json)
    assert read.keys() == written.keys() and len(read) == 9
    assert {k: j.met for k, j in read.items()} == {k: j.met for k, j in written.items()}
    assert {j.met for j in read.values()} == {True, False}
    assert all((j.probability >= 0.5) is j.met for j in read.values())

    pairwise_run = launch(eager, project, editor, logprob_endpoint, mode="pairwise")
    json_pairs = launch(eager, project, editor, json_judge, mode="pairwise")
    winners = {(p.a.pk, p.b.pk): p.winner for p in run_results(json_pairs).pairs}
    for pair in run_results(pairwise_run).pairs:
        assert pair.winner == winners[(pair.a.pk, pair.b.pk)]


def test_what_a_logprob_judge_cannot_do_is_a_clear_error(
    project, editor, logprob_endpoint, fake_llm
):
    rubric_project(project, editor, prompts=1, responses=2)
    for options, message in (
        ({"mode": "grouped"}, "P\\(yes\\)-from-logprobs judge: it grades per criterion or"),
        ({"mode": "holistic"}, "grades per criterion or pairwise"),
        ({"mode": "per_criterion", "samples": 3}, "temperature 0, so one sample and no"),
        ({"mode": "per_criterion", "temperature": 0.7}, "one sample and no temperature"),
    ):
        with pytest.raises(ApplicationError, match=message):
            run_services.run_create(
                project=project, actor=editor, endpoint=logprob_endpoint, **options
            )
    assert not Run.objects.exists()
    with pytest.raises(ApplicationError, match="cannot write rubrics"):
        coauthor_services.endpoint_for(project, logprob_endpoint.pk)
    with pytest.raises(ApplicationError, match="No judge endpoint is configured"):
        coauthor_services.endpoint_for(project)  # never the default co-author


def test_the_preview_counts_one_call_and_one_output_token_per_question(
    project, editor, logprob_endpoint
):
    rubric_project(project, editor, prompts=2, responses=2)
    for mode, calls in (("per_criterion", 2 * 2 * 3), ("pairwise", 2 * 2 * (1 + 3))):
        plan = planning.plan_units(
            project=project, endpoint=logprob_endpoint, mode=mode, sources=[], prompt_ids=[],
            versions=Run.Versions.LATEST, samples=1, temperature=None,
            pair_plan=Run.PairPlan.ALL if mode == "pairwise" else "",
        )  # fmt: skip
        preview = planning.preview(plan, endpoint=logprob_endpoint, mode=mode)
        assert (preview.calls, preview.output_tokens) == (calls, calls)
        assert preview.seconds is not None and preview.cost > 0


def test_an_endpoint_switched_to_another_backend_mid_run_fails_the_run(
    project, owner, editor, logprob_endpoint, django_capture_on_commit_callbacks
):
    from scoring.runs import chunks as run_chunks

    rubric_project(project, editor, prompts=1, responses=1)
    with django_capture_on_commit_callbacks(execute=False):
        run = run_services.run_create(
            project=project, actor=editor, endpoint=logprob_endpoint, mode="per_criterion"
        )
    judge_services.endpoint_save(
        project=project, actor=owner, endpoint=logprob_endpoint, data={"backend": "openai"}
    )
    run_chunks.chunk_run(run.pk, 0)
    run.refresh_from_db()
    assert run.status == "failed" and "was changed since this run started" in run.note
    assert not Judgment.objects.exists()


def test_the_api_and_the_judges_page_add_a_logprob_endpoint(
    project, owner, outsider, viewer, api, client, fake_llm
):
    url = f"/api/projects/{project.slug}/endpoints/"
    body = {"name": "fleet", "backend": "openai_logprobs", "base_url": fake_llm.url + "/v1",
            "model": "fake-judge", "threshold": 0.7}  # fmt: skip
    api.force_authenticate(outsider)
    assert api.post(url, body, format="json").status_code == 404
    api.force_authenticate(viewer)
    assert api.post(url, body, format="json").status_code == 403
    api.force_authenticate(owner)
    bad = api.post(url, {**body, "threshold": 1.5}, format="json")
    assert bad.status_code == 400 and "between 0 and 1" in str(bad.json())
    made = api.post(url, body, format="json")
    assert made.status_code == 201
    assert (made.json()["backend"], made.json()["threshold"]) == ("openai_logprobs", 0.7)
    assert made.json()["base_url"] == fake_llm.url + "/v1"

    client.force_login(owner)
    page_url = reverse("scoring:judges", args=[project.slug])
    assert "OpenAI-compatible, P(yes) from logprobs" in client.get(page_url).content.decode()
    response = client.post(
        page_url,
        {
            "form": "endpoint", "name": "fleet two", "backend": "openai_logprobs",
            "provider": "", "base_url": fake_llm.url + "/v1", "model": "fake-judge",
            "threshold": "0.6", "temperature": "0", "max_tokens": "2048", "timeout": "60",
            "max_concurrency": "8", "price_input_per_m": "0", "price_output_per_m": "0",
            "dtype": "auto", "device": "auto", "batch_tokens": "16384",
        },
        follow=True,
    )  # fmt: skip
    page = response.content.decode()
    assert "Endpoint “fleet two” added." in page
    assert '<span class="tag">P(yes) from logprobs</span>' in page
    endpoint = project.judge_endpoints.get(name="fleet two")
    assert (endpoint.backend, endpoint.threshold) == ("openai_logprobs", 0.6)
    test = client.post(reverse("scoring:endpoint_test", args=[project.slug, endpoint.pk]))
    assert "is available" in test.content.decode()  # the server is asked, as for any LLM
