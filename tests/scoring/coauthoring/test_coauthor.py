"""LLM co-authoring against the fake OpenAI-compatible server: each action makes a proposal
that a person accepts (a new version with llm provenance) or that fails visibly without
changing anything; a faulty batch accounts for every prompt and every billed token; the
API key's value never leaves the environment; who may do what."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta

import pytest
from django.core import serializers
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.projects import services as project_services
from annotation.prompts.models import PreferenceLabel
from annotation.rubrics import services as rubric_services
from annotation.rubrics.models import Criterion, Rubric, RubricVersion
from annotation.rubrics.services import CriterionInput
from fakellm.config import Rule
from scoring.coauthoring import proposals as coauthor_proposals
from scoring.coauthoring import services as coauthor_services
from scoring.coauthoring.models import CoauthorJob, CoauthorSettings, Proposal
from scoring.judges import services as judge_services
from scoring.judges.models import JudgeEndpoint, LLMProvider
from scoring.judges.services import provider_save
from tests.factories import PromptFactory, ResponseFactory

HX = {"HTTP_HX_REQUEST": "true"}
GOOD, BAD = "Call emergency services now.", "Take an antacid and rest."


@pytest.fixture
def endpoint(project, owner, fake_llm):  # type: ignore[no-untyped-def]
    return judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={
            "name": "fake",
            "base_url": fake_llm.url + "/v1",
            "model": "fake-judge",
            "price_input_per_m": 2.0,
            "price_output_per_m": 8.0,
            "timeout": 5,
        },
    )


@pytest.fixture
def prompt(project, editor):  # type: ignore[no-untyped-def]
    prompt = PromptFactory(
        project=project,
        external_id="chest-1",
        messages=[{"role": "user", "content": "Crushing chest pain for 20 minutes, I'm 58."}],
    )
    good = ResponseFactory(prompt=prompt, source="model-a", content=GOOD)
    bad = ResponseFactory(prompt=prompt, source="model-b", content=BAD)
    PreferenceLabel.objects.create(prompt=prompt, chosen=good, rejected=bad)
    rubric_services.rubric_create(
        project=project,
        prompt=prompt,
        title="Chest pain",
        author=editor,
        criteria=[
            CriterionInput(text="Advises calling emergency services", points=10),
            CriterionInput(text="Is helpful", points=2),
        ],
    )
    return prompt


def verdicts(*met: bool) -> dict:
    return {"verdicts": [{"criterion_id": i, "met": m} for i, m in enumerate(met, 1)]}


def grade_rule(response: str, *met: bool) -> Rule:
    """The grading prompt of one response (its block opens with a 16-hex key)."""
    return Rule(
        rf"<<<RESPONSE [0-9a-f]{{16}}>>>\n{re.escape(response)}", verdicts(*met), regex=True
    )


SCRIPTS = {
    "draft": [
        Rule(
            "Write a rubric",
            {
                "criteria": [
                    {"text": "Tells the user to call an ambulance", "points": 9, "category": "essential", "kind": "hard_rule", "tags": ["axis:accuracy"]},
                    {"text": "Recommends antacids", "points": -6, "category": "pitfall", "kind": "principle", "tags": []},
                ]
            },
        )
    ],
    "critique": [
        Rule(
            "flag the numbered criteria",
            {"issues": [{"criterion_id": 2, "problem": "vague", "explanation": "Helpful how?", "suggested_rewrite": "Explains why chest pain at 58 is an emergency"}]},
        )
    ],
    "nuggets": [
        Rule(
            "extract the atomic information nuggets",
            {"nuggets": [{"text": "Aspirin may be chewed while waiting", "importance": "okay"}, {"text": "Heart attack symptoms need emergency care", "importance": "vital"}]},
        )
    ],
    "contrastive": [
        Rule(
            "<<<CHOSEN",
            {"hard_rules": [{"text": "Directs the user to emergency care", "points": 8, "category": "essential"}], "principles": [{"text": "Does not downplay cardiac symptoms", "points": 4, "category": "important"}]},
        ),
        grade_rule(GOOD, True, True),
        grade_rule(BAD, False, False),
    ],
    "refine": [
        Rule(
            "<<<RESPONSE A ",
            {"changes": [{"action": "split", "criterion_id": 1, "criteria": [{"text": "Advises calling emergency services", "points": 8, "category": "essential", "kind": "hard_rule", "tags": []}, {"text": "Says not to drive oneself to hospital", "points": 3, "category": "important", "kind": "principle", "tags": []}], "reason": "B misses the driving warning"}]},
        ),
        grade_rule(GOOD, True, True),
        grade_rule(BAD, False, True),
    ],
}  # fmt: skip


def start(client: Client, prompt, **data) -> str:  # type: ignore[no-untyped-def]
    url = reverse("scoring:coauthor_start", args=[prompt.project.slug, prompt.pk])
    response = client.post(url, data, **HX)
    assert response.status_code == 200
    return response.content.decode()


def panel(client: Client, prompt) -> str:  # type: ignore[no-untyped-def]
    """The co-author panel as its polling shows it once the job has run."""
    url = reverse("scoring:coauthor_panel", args=[prompt.project.slug, prompt.pk])
    return client.get(url).content.decode()


@pytest.mark.parametrize("kind", ["draft", "critique", "nuggets", "contrastive", "refine"])
def test_each_action_makes_a_proposal_that_is_accepted_as_a_version(
    client, project, prompt, editor, endpoint, fake_llm, eager, kind
):
    CoauthorSettings.objects.filter(project=project).update(refine_rounds=1)
    fake_llm.configure(rules=SCRIPTS[kind])
    client.force_login(editor)
    data = {"kind": kind}
    if kind == "contrastive":
        data["label"] = str(PreferenceLabel.objects.get().pk)
    if kind == "nuggets":
        data["reference"] = "Chest pain with sweating suggests a heart attack; call 911."
    eager(lambda: start(client, prompt, **data))
    html = panel(client, prompt)
    proposal = Proposal.objects.get()
    assert proposal.status == "pending", proposal.error
    assert 'name="accept"' in html and f"proposal-{proposal.pk}" in html
    job = proposal.job
    assert (job.status, job.calls) == ("done", fake_llm.stats()["requests"])
    if kind == "contrastive":
        assert proposal.notes["reproduced"] is True and proposal.notes["tries"] == 1
    changes = coauthor_proposals.proposal_changes(proposal)
    assert changes, "the proposal changes nothing"
    url = reverse("scoring:proposal_decide", args=[project.slug, proposal.pk])
    response = client.post(url, {"decision": "accept_all"}, **HX)
    assert "Accepted as version 2." in response.content.decode()
    assert response["HX-Trigger"] == "rubric-changed"
    version = RubricVersion.objects.get(rubric__prompt=prompt, number=2)
    assert version.author == editor and version.author_model == "fake-judge"
    assert "fake-judge" in version.note and proposal.template_version in version.note
    touched = {c.key for c in changes if c.status in ("added", "changed")}
    rows = {str(c.key): c for c in version.criteria.all()}
    for key in touched:
        assert (rows[key].provenance, rows[key].provenance_model) == ("llm", "fake-judge")
    untouched = [c for k, c in rows.items() if k not in touched]
    assert all(c.provenance == "human" for c in untouched)
    proposal.refresh_from_db()
    assert (proposal.status, proposal.result_version) == ("accepted", 2)


def test_accepting_some_changes_and_editing_one_later_makes_it_hybrid(
    client, project, prompt, editor, endpoint, fake_llm, eager
):
    fake_llm.configure(rules=SCRIPTS["draft"])
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="draft"))
    proposal = Proposal.objects.get()
    first, second = (c.key for c in coauthor_proposals.proposal_changes(proposal))
    url = reverse("scoring:proposal_decide", args=[project.slug, proposal.pk])
    client.post(url, {"decision": "accept_selected", "accept": [first]}, **HX)
    proposal.refresh_from_db()
    assert proposal.status == "partial"
    rubric = Rubric.objects.get(prompt=prompt)
    texts = list(rubric.current_version.criteria.values_list("text", flat=True))
    assert "Tells the user to call an ambulance" in texts and "Recommends antacids" not in texts
    draft = reverse("annotation:rubric_draft", args=[project.slug, rubric.pk, "update"])
    client.post(draft, {"key": first, "text": "Tells the user to call an ambulance at once"}, **HX)
    client.post(reverse("annotation:rubric_save", args=[project.slug, rubric.pk]), {}, **HX)
    edited = Criterion.objects.get(version__rubric=rubric, version__number=3, key=first)
    assert (edited.provenance, edited.provenance_model) == ("hybrid", "fake-judge")
    assert second not in {
        str(k) for k in rubric.current_version.criteria.values_list("key", flat=True)
    }


def test_a_malformed_answer_is_a_visible_error_and_changes_nothing(
    client, project, prompt, editor, endpoint, fake_llm, eager
):
    fake_llm.configure(rules=[Rule("Write a rubric", '{"criteria": [{"text": "cut off')])
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="draft"))
    html = panel(client, prompt)
    proposal = Proposal.objects.get()
    assert proposal.status == "failed" and proposal.error
    assert "failed:" in html and "Nothing was changed." in html
    assert fake_llm.stats()["requests"] == 2  # the answer, then one repair attempt
    assert (
        proposal.calls == 2 and proposal.prompt_tokens == fake_llm.stats()["usage"]["prompt_tokens"]
    )
    assert RubricVersion.objects.filter(rubric__prompt=prompt).count() == 1
    with pytest.raises(Exception, match="already failed"):
        coauthor_proposals.proposal_decide(proposal=proposal, actor=editor, accept=None)


def test_no_endpoint_shows_a_banner(client, project, prompt, editor):
    client.force_login(editor)
    url = reverse("scoring:coauthor_panel", args=[project.slug, prompt.pk])
    html = client.get(url).content.decode()
    assert "No judge endpoint is configured" in html
    html = start(client, prompt, kind="draft")
    assert "No judge endpoint is configured" in html
    assert not CoauthorJob.objects.exists()


def test_a_batch_with_faults_accounts_for_every_prompt_and_token(
    project, owner, editor, endpoint, fake_llm, eager
):
    prompts = [
        PromptFactory(project=project, messages=[{"role": "user", "content": f"Question {i}?"}])
        for i in range(200)
    ]
    JudgeEndpoint.objects.filter(pk=endpoint.pk).update(timeout=0.5, max_concurrency=16)
    fake_llm.configure(
        rate_429=0.07,
        rate_500=0.07,
        rate_timeout=0.06,
        rate_malformed=0.05,
        retry_after=0.01,
        hang_seconds=1.0,
        seed=7,
    )
    job = eager(
        lambda: coauthor_services.job_start(
            project=project, actor=editor, kind="draft", prompt_ids=[p.pk for p in prompts]
        )
    )
    job.refresh_from_db()
    stats = fake_llm.stats()
    assert stats["by_outcome"]["429"] and stats["by_outcome"]["timeout"]  # faults happened
    assert stats["by_outcome"]["malformed"]
    proposals = list(Proposal.objects.filter(job=job))
    assert sorted(p.prompt_id for p in proposals) == sorted(p.pk for p in prompts)  # no dupes
    assert all(p.status == "pending" or (p.status == "failed" and p.error) for p in proposals)
    assert (job.status, job.done + job.failed, job.total) == ("done", 200, 200)
    usage = stats["usage"]
    assert (job.prompt_tokens, job.completion_tokens, job.cached_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        usage["cached_tokens"],
    )
    expected_cost = ((usage["prompt_tokens"]) * 2.0 + usage["completion_tokens"] * 8.0) / 1e6
    assert job.cost == pytest.approx(expected_cost, rel=1e-9)
    assert job.calls == stats["by_outcome"]["ok"] + stats["by_outcome"]["malformed"]


def test_the_api_key_value_appears_nowhere(
    client, project, prompt, owner, editor, fake_llm, eager, monkeypatch, caplog
):
    secret = "sk-live-DO-NOT-LEAK-7f3a9c2e"
    monkeypatch.setenv("RUBRICSTUDIO_LLM_KEY_JUDGE", secret)
    caplog.set_level(logging.DEBUG)
    provider = provider_save(
        provider=LLMProvider(
            name="judge", base_url=fake_llm.url + "/v1", api_key_env="RUBRICSTUDIO_LLM_KEY_JUDGE"
        )
    )
    client.force_login(owner)
    client.post(
        reverse("scoring:judges", args=[project.slug]),
        {
            "form": "endpoint",
            "name": "keyed",
            "provider": str(provider.pk),
            "model": "fake-judge",
            "temperature": "0",
            "max_tokens": "512",
            "timeout": "0.5",
            "max_concurrency": "4",
            "price_input_per_m": "0",
            "price_output_per_m": "0",
        },
    )
    endpoint = JudgeEndpoint.objects.get(name="keyed")
    fake_llm.configure(rate_500=0.3, rate_malformed=0.2, rate_timeout=0.1, hang_seconds=1.0)
    eager(lambda: start(client, prompt, kind="draft"))
    eager(lambda: start(client, prompt, kind="critique"))
    test_url = reverse("scoring:endpoint_test", args=[project.slug, endpoint.pk])
    seen = [client.post(test_url, **HX).content.decode()]
    api = Client()
    api.force_login(owner)
    job = CoauthorJob.objects.first()
    for url in (
        reverse("scoring:judges", args=[project.slug]),
        reverse("scoring:endpoint_edit", args=[project.slug, endpoint.pk]),
        reverse("scoring:coauthor_panel", args=[project.slug, prompt.pk]),
        reverse("scoring:job", args=[project.slug, job.pk]),
        reverse("annotation:prompt_detail", args=[project.slug, prompt.pk]),
        f"/api/projects/{project.slug}/endpoints/",
        f"/api/projects/{project.slug}/coauthor/jobs/{job.pk}/",
    ):
        seen.append(api.get(url).content.decode())
    from django.apps import apps

    for model in apps.get_models():
        seen.append(serializers.serialize("json", model.objects.all()))
    seen.append(caplog.text)
    seen.extend(str(r.__dict__) for r in caplog.records)
    assert all(secret not in text for text in seen)
    assert any(
        "RUBRICSTUDIO_LLM_KEY_JUDGE" in text for text in seen
    )  # the name is shown, not the value


def test_a_missing_key_variable_fails_the_job_clearly(
    client, project, prompt, owner, editor, fake_llm, eager, monkeypatch
):
    monkeypatch.delenv("RUBRICSTUDIO_LLM_KEY_ABSENT", raising=False)
    provider = provider_save(
        provider=LLMProvider(
            name="absent", base_url=fake_llm.url + "/v1", api_key_env="RUBRICSTUDIO_LLM_KEY_ABSENT"
        )
    )
    endpoint = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "nokey", "provider": provider.pk, "model": "m"},
    )
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="draft", endpoint=str(endpoint.pk)))
    html = panel(client, prompt)
    job = CoauthorJob.objects.get()
    assert (
        job.status == "failed"
        and "RUBRICSTUDIO_LLM_KEY_ABSENT" in job.error
        and "not set" in job.error
    )
    assert "The job failed" in html


def test_endpoint_validation_and_roles(client, project, owner, editor, viewer, outsider, fake_llm):
    url = reverse("scoring:judges", args=[project.slug])
    base = {"name": "e", "base_url": fake_llm.url + "/v1", "model": "m", "temperature": "0", "max_tokens": "10", "timeout": "5", "max_concurrency": "2", "price_input_per_m": "0", "price_output_per_m": "0"}  # fmt: skip
    client.force_login(owner)
    bad = client.post(url, {**base, "api_key_env": "sk-abc123"}, follow=True).content.decode()
    assert "do not name an API key" in bad and not JudgeEndpoint.objects.exists()
    bad = client.post(url, {**base, "base_url": "ftp://x"}, follow=True).content.decode()
    assert "must start with http" in bad
    bad = client.post(url, {**base, "timeout": "soon"}, follow=True).content.decode()
    assert "timeout must be a number" in bad
    client.post(url, base)
    assert JudgeEndpoint.objects.count() == 1
    client.force_login(editor)
    assert client.get(url).status_code == 200
    assert client.post(url, {**base, "name": "other"}).status_code == 403
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert JudgeEndpoint.objects.count() == 1


def test_coauthoring_is_for_editors_and_scoped_to_the_project(
    client, project, prompt, editor, viewer, outsider, endpoint, fake_llm, eager
):
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="draft"))
    proposal = Proposal.objects.get()
    decide = reverse("scoring:proposal_decide", args=[project.slug, proposal.pk])
    panel = reverse("scoring:coauthor_panel", args=[project.slug, prompt.pk])
    begin = reverse("scoring:coauthor_start", args=[project.slug, prompt.pk])
    job = reverse("scoring:job", args=[project.slug, proposal.job_id])
    client.force_login(viewer)
    assert client.get(panel).status_code == 403
    assert client.post(begin, {"kind": "draft"}).status_code == 403
    assert client.post(decide, {"decision": "accept_all"}).status_code == 403
    client.force_login(outsider)
    for url in (panel, job):
        assert client.get(url).status_code == 404
    for url in (begin, decide):
        assert client.post(url, {"kind": "draft", "decision": "accept_all"}).status_code == 404
    other = project_services.project_create(name="Other", slug="other", owner=outsider)
    foreign = reverse("scoring:proposal_decide", args=[other.slug, proposal.pk])
    assert client.post(foreign, {"decision": "accept_all"}).status_code == 404
    proposal.refresh_from_db()
    assert proposal.status == "pending" and CoauthorJob.objects.count() == 1


def test_batch_page_previews_cost_then_launches(client, project, editor, endpoint, fake_llm, eager):
    for _ in range(5):
        PromptFactory(project=project, messages=[{"role": "user", "content": "x" * 400}])
    client.force_login(editor)
    url = reverse("scoring:batch", args=[project.slug])
    html = client.post(
        url, {"kind": "draft", "which": "no_rubric", "limit": "3", "preview": "1"}
    ).content.decode()
    assert "Before you launch" in html and "Launch 3 items" in html
    preview = coauthor_services.batch_preview(
        endpoint=endpoint, kind="draft", prompts=list(project.prompts.all()[:3])
    )
    assert preview.calls == 3 and preview.input_tokens == (3 * 400 + 3 * 1800) // 4
    assert f"${preview.cost:.4f}" in html
    response = eager(
        lambda: client.post(
            url, {"kind": "draft", "which": "no_rubric", "limit": "3", "launch": "1"}
        )
    )
    job = CoauthorJob.objects.get()
    assert response.url == reverse("scoring:job", args=[project.slug, job.pk])
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.batch) == ("done", 3, 3, True)
    html = client.get(response.url).content.decode()
    assert html.count("Waiting for review") == 3


def test_api_parity(project, prompt, owner, editor, viewer, outsider, fake_llm, eager, api):
    api.force_authenticate(owner)
    created = api.post(
        f"/api/projects/{project.slug}/endpoints/",
        {"name": "api", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    api.force_authenticate(editor)
    fake_llm.configure(rules=SCRIPTS["draft"])
    job = eager(
        lambda: api.post(
            f"/api/projects/{project.slug}/coauthor/jobs/",
            {"kind": "draft", "prompts": [prompt.pk]},
            format="json",
        )
    )
    assert job.status_code == 201, job.json()
    body = api.get(f"/api/projects/{project.slug}/coauthor/jobs/{job.json()['id']}/").json()
    assert body["status"] == "done" and len(body["proposals"]) == 1
    proposal = body["proposals"][0]
    decided = api.post(
        f"/api/projects/{project.slug}/proposals/{proposal['id']}/decide/",
        {"accept": None},
        format="json",
    )
    assert decided.json()["version"]["number"] == 2
    assert decided.json()["version"]["author_model"] == "fake-judge"
    api.force_authenticate(viewer)
    assert api.get(f"/api/projects/{project.slug}/endpoints/").status_code == 403
    api.force_authenticate(outsider)
    assert api.get(f"/api/projects/{project.slug}/coauthor/jobs/").status_code == 404


def test_accepting_a_stale_proposal_keeps_what_a_person_changed_since(
    client, project, prompt, editor, endpoint, fake_llm, eager
):
    fake_llm.configure(rules=SCRIPTS["critique"] + SCRIPTS["draft"])
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="critique"))
    proposal = Proposal.objects.get()
    rubric = Rubric.objects.get(prompt=prompt)
    keys = [str(c.key) for c in rubric.current_version.criteria.order_by("position")]
    # Meanwhile a person changes the criterion the critique rewrites, and adds one.
    rubric_services.rubric_version_create(
        rubric=rubric,
        author=editor,
        criteria=[
            CriterionInput(text="Advises calling emergency services", points=10, key=keys[0]),
            CriterionInput(text="Is helpful and kind", points=7, key=keys[1]),
            CriterionInput(text="Mentions aspirin", points=1),
        ],
    )
    version = coauthor_proposals.proposal_decide(proposal=proposal, actor=editor, accept=None)
    rows = [(c.text, c.points) for c in version.criteria.order_by("position")]
    assert rows == [
        ("Advises calling emergency services", 10.0),
        ("Is helpful and kind", 7.0),  # the person's edit stays; the rewrite is skipped
        ("Mentions aspirin", 1.0),
    ]
    proposal.refresh_from_db()
    assert proposal.status == "partial"


def test_refine_rounds_are_diffs_on_the_round_before(
    client, project, prompt, editor, endpoint, fake_llm, eager
):
    CoauthorSettings.objects.filter(project=project).update(refine_rounds=2)
    round_two = Rule(
        "Says not to drive oneself",
        {"changes": [{"action": "delete", "criterion_id": 3, "criteria": [], "reason": "C"}]},
    )

    def round_two_grade(response: str, *met: bool) -> Rule:  # rubric of round 1: 3 criteria
        pattern = rf"(?s)<<<RESPONSE [0-9a-f]{{16}}>>>\n{re.escape(response)}.*Says not to drive"
        return Rule(pattern, verdicts(*met), regex=True)

    fake_llm.configure(
        rules=[
            Rule(r"(?s)<<<RESPONSE A .*Says not to drive", round_two.reply, regex=True),
            round_two_grade(GOOD, True, True, True),
            round_two_grade(BAD, False, True, False),
            *SCRIPTS["refine"],
        ]
    )
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="refine"))
    one, two = Proposal.objects.order_by("round")
    assert (one.status, two.status) == ("pending", "pending"), (one.error, two.error)
    assert [c.status for c in coauthor_proposals.proposal_changes(one)] == ["changed", "added"]
    # Round 2 shows only its own change, on round 1's criteria, with round 1's keys.
    changes = coauthor_proposals.proposal_changes(two)
    assert [(c.status, c.old.text) for c in changes] == [("removed", "Is helpful")]
    added = next(c for c in one.criteria if c["text"] == "Says not to drive oneself to hospital")
    assert added["key"] in {c["key"] for c in two.criteria}
    assert added["provenance"] == "llm" and added["provenance_model"] == "fake-judge"


def test_bad_decisions_and_endpoints_get_clear_errors(
    client, project, prompt, owner, editor, endpoint, fake_llm, eager
):
    fake_llm.configure(rules=SCRIPTS["draft"])
    client.force_login(editor)
    eager(lambda: start(client, prompt, kind="draft"))
    proposal = Proposal.objects.get()
    url = reverse("scoring:proposal_decide", args=[project.slug, proposal.pk])
    html = client.post(url, {"decision": "accept_selected"}, **HX).content.decode()
    assert "Tick the changes to accept" in html
    assert client.post(url, {"decision": "maybe"}, **HX).status_code == 400
    proposal.refresh_from_db()
    assert proposal.status == "pending"
    html = start(client, prompt, kind="draft", endpoint="abc")
    assert "is not an endpoint id" in html
    # The default endpoint deleted: the remaining one is used.
    other = judge_services.endpoint_save(
        project=project,
        actor=owner,
        data={"name": "other", "base_url": fake_llm.url + "/v1", "model": "fake-judge"},
    )
    judge_services.endpoint_delete(endpoint=endpoint, actor=owner)
    assert coauthor_services.endpoint_for(project) == other
    # A zero rate limit is refused rather than stalling a job.
    with pytest.raises(Exception, match="RPM is at least 1"):
        judge_services.endpoint_save(project=project, actor=owner, data={"rpm": 0}, endpoint=other)


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"])
def test_endpoints_cannot_name_the_studios_own_secrets(project, owner, fake_llm, name):
    with pytest.raises(Exception, match="do not name an API key"):
        judge_services.endpoint_save(
            project=project,
            actor=owner,
            data={"name": "x", "base_url": fake_llm.url + "/v1", "model": "m", "api_key_env": name},
        )
    assert not JudgeEndpoint.objects.exists()
    # Not even a site admin's provider may read the studio's own secrets.
    with pytest.raises(Exception, match="not a variable LLM keys may be read from"):
        provider_save(
            provider=LLMProvider(name="x", base_url="https://x.test/v1", api_key_env=name)
        )
    assert not LLMProvider.objects.exists()


def test_one_pair_per_prompt_in_a_contrastive_job(project, prompt, editor, endpoint):
    label = PreferenceLabel.objects.get()
    again = PreferenceLabel.objects.create(
        prompt=prompt, chosen=label.chosen, rejected=label.rejected, source="expert"
    )
    with pytest.raises(Exception, match="one preference pair per prompt"):
        coauthor_services.job_start(
            project=project, actor=editor, kind="contrastive", label_ids=[label.pk, again.pk]
        )


@pytest.mark.django_db(transaction=True)
def test_a_live_job_beats_its_heartbeat_and_stops_once_another_worker_claims_it(
    project, editor, endpoint, fake_llm, monkeypatch
):
    """While a chunk's calls run, a thread keeps the job's heartbeat fresh (the sweep then
    leaves it alone); a worker whose job was claimed again meanwhile (its heartbeat had
    stalled past the lease) stops before its next chunk and leaves the job to the new claim."""
    from scoring.coauthoring import services as coauthor_services
    from scoring.coauthoring import worker as coauthor_worker

    monkeypatch.setattr(coauthor_services, "job_send", lambda job_id: None)  # run it here, below
    monkeypatch.setattr(coauthor_worker, "LEASE", timedelta(milliseconds=50))  # a beat every 10 ms
    prompts = [
        PromptFactory(project=project, messages=[{"role": "user", "content": f"Question {i}?"}])
        for i in range(20)
    ]
    JudgeEndpoint.objects.filter(pk=endpoint.pk).update(max_concurrency=1)  # chunks of 8
    job = coauthor_services.job_start(
        project=project, actor=editor, kind="draft", prompt_ids=[p.pk for p in prompts]
    )
    write = coauthor_worker._write
    beats: list[object] = []

    def look_then_write(job_, item, results):  # type: ignore[no-untyped-def]
        if not beats:
            claimed = CoauthorJob.objects.get(pk=job_.pk).heartbeat_at
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not beats:
                beat = CoauthorJob.objects.get(pk=job_.pk).heartbeat_at
                if beat != claimed:
                    beats.append(beat)
                time.sleep(0.01)
            # another worker claims the job now
            CoauthorJob.objects.filter(pk=job_.pk).update(
                started_at=timezone.now() + timedelta(seconds=1)
            )
        return write(job_, item, results)

    monkeypatch.setattr(coauthor_worker, "_write", look_then_write)
    calls_before = fake_llm.stats()["requests"]
    coauthor_worker.job_run(job.pk)
    job.refresh_from_db()
    assert beats, "no heartbeat while the chunk ran"
    assert job.status == "running" and job.finished_at is None  # left to the new claim
    assert Proposal.objects.filter(job=job).count() == job.done == 8  # one chunk, no more
    assert fake_llm.stats()["requests"] - calls_before == 8
