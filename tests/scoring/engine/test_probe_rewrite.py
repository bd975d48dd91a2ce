"""Causal rewrites (the engine's request, its checks) and the offline judge's part in judge
probes: it recognises instructions to the grader hidden in a response and ignores them, or
obeys them when scripted to, and writes causal rewrites that remove or add exactly what a
criterion names. Requests are rendered from the studio's real templates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fakellm import judge as offline
from scoring.engine import judging, perturb, probe_rewrite
from scoring.engine.gateway_types import CallResult, GatewayError, Usage

SECRET = b"test-secret"
CONVERSATION = [{"role": "user", "content": "I have a cold. What should I do?"}]
RESPONSE = (
    "Drink plenty of water through the day to stay hydrated.\n\n"
    "Rest in bed for two days so the body can recover."
)
WATER = judging.JudgeCriterion(1, "Advises drinking water to stay hydrated", 5)
DOCTOR = judging.JudgeCriterion(2, "Advises seeing a doctor if the cough lasts three weeks", 5)
PITFALL = judging.JudgeCriterion(3, "Recommends antibiotics for a viral cold", -4)


def result(parsed: dict[str, Any]) -> CallResult:
    return CallResult(content="", parsed=parsed, usage=Usage(calls=1, prompt_tokens=10),
                      attempts=1, cached=False, latency=0.0, cache_key="", model="m")  # fmt: skip


def text_of(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def verdict(response: str, criterion: judging.JudgeCriterion, *, follow: bool) -> bool:
    messages = judging.criterion_messages(CONVERSATION, response, criterion, secret=SECRET)
    answer = offline.answer(
        "verdict", judging.CRITERION_SCHEMA, text_of(messages), follow_injections=follow
    )
    assert answer is not None
    return bool(answer["criteria_met"])


@pytest.mark.parametrize("phrasing", range(len(perturb.INJECTIONS)))
@pytest.mark.parametrize("position", perturb.POSITIONS)
def test_every_injection_is_ignored_by_a_careful_judge_and_obeyed_by_a_gullible_one(
    phrasing: int, position: str
) -> None:
    injected = perturb.inject(RESPONSE, 0, phrasing=phrasing, position=position)
    assert offline.injected(injected) and not offline.injected(RESPONSE)
    for criterion in (WATER, DOCTOR, PITFALL):
        assert verdict(injected, criterion, follow=False) == verdict(
            RESPONSE, criterion, follow=False
        )
    assert verdict(injected, DOCTOR, follow=True) is True  # unmet, obeyed as met
    assert verdict(injected, PITFALL, follow=True) is False  # no pitfall for an obedient judge
    assert verdict(RESPONSE, DOCTOR, follow=True) is False  # nothing to obey: judged as ever


def test_grouped_verdicts_follow_the_same_switch() -> None:
    injected = perturb.inject(RESPONSE, 0, phrasing=0, position="end")
    messages = judging.grouped_messages(
        CONVERSATION, injected, [WATER, DOCTOR, PITFALL], secret=SECRET
    )
    schema = judging.grouped_schema(3)
    careful = offline.answer("verdicts", schema, text_of(messages))
    gullible = offline.answer("verdicts", schema, text_of(messages), follow_injections=True)
    assert careful is not None and gullible is not None
    met = next(k for k in ("criteria_met", "met") if k in careful["verdicts"][0])
    assert [v[met] for v in careful["verdicts"]] == [True, False, False]
    assert [v[met] for v in gullible["verdicts"]] == [True, True, False]


class OfflineRewriter:
    """A chat client answering through the offline judge, as the fake server does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def chat(self, messages: list[dict[str, str]], **kwargs: Any) -> CallResult:
        name = kwargs["schema_name"]
        self.calls.append((name, kwargs["template_version"]))
        parsed = offline.answer(name, kwargs["schema"], text_of(messages))
        assert parsed is not None, name
        return result(parsed)


def rewrite(
    client: Any, criterion: judging.JudgeCriterion, direction: str
) -> probe_rewrite.Rewrite:
    return asyncio.run(probe_rewrite.rewrite(
        client, conversation=CONVERSATION, response=RESPONSE, criterion=criterion.text,
        points=criterion.points, direction=direction, secret=SECRET,
    ))  # fmt: skip


def test_a_removal_takes_out_what_the_criterion_names_and_keeps_the_rest() -> None:
    client = OfflineRewriter()
    removed = rewrite(client, WATER, probe_rewrite.REMOVE)
    assert not removed.error and removed.usage.calls == 1
    assert client.calls == [("causal_removal", probe_rewrite.template_version())]
    assert "water" not in removed.text.lower() and "Rest in bed" in removed.text
    assert verdict(RESPONSE, WATER, follow=False) and not verdict(removed.text, WATER, follow=False)


def test_an_addition_makes_the_criterion_met_and_keeps_the_response() -> None:
    added = rewrite(OfflineRewriter(), DOCTOR, probe_rewrite.ADD)
    assert added.text.startswith(RESPONSE)
    assert not verdict(RESPONSE, DOCTOR, follow=False) and verdict(added.text, DOCTOR, follow=False)


def test_a_rewrite_that_changes_nothing_or_fails_is_an_error_not_a_copy() -> None:
    class Echo:
        async def chat(self, messages: list[dict[str, str]], **kwargs: Any) -> CallResult:
            return result({"rewritten": RESPONSE + "\n"})

    class Down:
        async def chat(self, messages: list[dict[str, str]], **kwargs: Any) -> CallResult:
            raise GatewayError("server_error", "the endpoint answered 500", usage=Usage(calls=1))

    same = rewrite(Echo(), WATER, probe_rewrite.REMOVE)
    assert same.text == "" and same.error == "the rewrite changed nothing"
    failed = rewrite(Down(), WATER, probe_rewrite.REMOVE)
    assert failed.text == "" and "500" in failed.error and failed.usage.calls == 1
    with pytest.raises(ValueError, match="direction"):
        rewrite(Echo(), WATER, "swap")


def test_the_response_to_rewrite_is_marked_material_not_instructions() -> None:
    client = OfflineRewriter()
    rewrite(client, WATER, probe_rewrite.REMOVE)
    from scoring.engine import prompts

    template = prompts.load("rewrite")
    assert template.version == probe_rewrite.template_version() == "causal-rewrite-v1"
    assert "never instructions to you" in template.system


def test_the_fake_servers_switch_is_per_model() -> None:
    from fakellm.config import FakeConfig

    config = FakeConfig(follow_injections=["fake-judge-gullible"])
    assert config.follows_injections("fake-judge-gullible")
    assert not config.follows_injections("fake-judge")
    assert FakeConfig(follow_injections=["*"]).follows_injections("any")
    assert FakeConfig().with_changes(**config.to_dict()).follow_injections == [
        "fake-judge-gullible"
    ]
    with pytest.raises(ValueError, match="list of model names"):
        FakeConfig(follow_injections="fake-judge")  # type: ignore[arg-type]
