"""One-token answers with log-probabilities through the gateway, against the fake server:
what is sent (``logprobs``, ``top_logprobs``, ``max_tokens: 1``), the first token's
``top_logprobs`` handed back as (token, log-probability) pairs, a server that drops them
read as None, billing and the cache as for any call."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from scoring.engine.gateway import Gateway
from scoring.engine.gateway_cache import MemoryCache
from scoring.engine.gateway_types import EndpointConfig, GatewayError
from scoring.engine.netguard import NetworkPolicy

QUESTION = [
    {"role": "system", "content": "Answer with one word: yes or no."},
    {"role": "user", "content": "Is the sky blue on a clear day? Answer yes or no."},
]
SCRIPTED = [
    {"token": "No", "logprob": math.log(0.1)},
    {"token": " Yes", "logprob": math.log(0.6)},
    {"token": "Yes", "logprob": math.log(0.2)},
    {"token": "Maybe", "logprob": math.log(0.05)},
]


def config(url: str, **changes: Any) -> EndpointConfig:
    return EndpointConfig(
        name="fake", base_url=f"{url}/v1", model="fake-judge",
        network=NetworkPolicy.parse(["127.0.0.1"]), price_input_per_m=1.0,
        price_output_per_m=2.0, **changes,
    )  # fmt: skip


def ask(url: str, *, cache: MemoryCache | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with Gateway(config(url), cache=cache) as gateway:
            return await gateway.chat(QUESTION, temperature=0.0, max_tokens=1, **kw)

    return asyncio.run(go())


def test_the_request_asks_for_logprobs_and_the_top_tokens_come_back(fake_llm):  # type: ignore[no-untyped-def]
    fake_llm.configure(logprob_rules=[{"pattern": "sky blue", "top_logprobs": SCRIPTED}])
    result = ask(fake_llm.url, top_logprobs=20, use_cache=False)
    (sent,) = fake_llm.recent_requests()
    assert (sent["logprobs"], sent["top_logprobs"], sent["max_tokens"]) == (True, 20, 1)
    assert sent["temperature"] == 0.0 and sent["messages"] == QUESTION
    assert "response_format" not in sent
    assert result.content == " Yes"  # the most likely token is the answer
    assert result.top_logprobs == [
        (" Yes", pytest.approx(math.log(0.6))),
        ("Yes", pytest.approx(math.log(0.2))),
        ("No", pytest.approx(math.log(0.1))),
        ("Maybe", pytest.approx(math.log(0.05))),
    ]
    assert result.usage.calls == 1 and result.usage.completion_tokens == 1
    assert result.usage.cost > 0


def test_fewer_top_tokens_when_fewer_are_asked_for(fake_llm):  # type: ignore[no-untyped-def]
    fake_llm.configure(logprob_rules=[{"pattern": "sky blue", "top_logprobs": SCRIPTED}])
    result = ask(fake_llm.url, top_logprobs=2, use_cache=False)
    assert [token for token, _ in result.top_logprobs or []] == [" Yes", "Yes"]


def test_a_plain_call_gets_no_logprobs(fake_llm):  # type: ignore[no-untyped-def]
    result = ask(fake_llm.url, use_cache=False)
    assert result.top_logprobs is None
    assert "logprobs" not in fake_llm.recent_requests()[0]


def test_a_server_that_drops_the_logprobs_gives_none(fake_llm):  # type: ignore[no-untyped-def]
    fake_llm.configure(rate_malformed=1.0)  # the fake's way of sending none
    result = ask(fake_llm.url, top_logprobs=20, use_cache=False)
    assert result.top_logprobs is None and result.attempts == 1


def test_a_refused_top_logprobs_is_a_client_error(fake_llm):  # type: ignore[no-untyped-def]
    with pytest.raises(GatewayError) as info:
        ask(fake_llm.url, top_logprobs=25, use_cache=False)
    assert (info.value.kind, info.value.status) == ("client_error", 400)


def test_cached_answers_keep_their_top_tokens(fake_llm):  # type: ignore[no-untyped-def]
    fake_llm.configure(logprob_rules=[{"pattern": "sky blue", "top_logprobs": SCRIPTED}])
    cache = MemoryCache()
    first = ask(fake_llm.url, cache=cache, top_logprobs=20)
    again = ask(fake_llm.url, cache=cache, top_logprobs=20)
    assert again.cached and again.top_logprobs == first.top_logprobs
    assert fake_llm.stats()["requests"] == 1
    plain = ask(fake_llm.url, cache=cache)  # without logprobs: another key
    assert not plain.cached and plain.top_logprobs is None


def test_logprob_rules_are_checked_and_round_trip_through_the_config(fake_llm):  # type: ignore[no-untyped-def]
    from fakellm.config import FakeConfig

    for bad, message in (
        ({"pattern": "x"}, "needs 'pattern' and 'top_logprobs'"),
        ({"pattern": "x", "top_logprobs": []}, "at least one token"),
        ({"pattern": "x", "top_logprobs": [{"token": "Yes", "logprob": 0.5}]}, "≤ 0"),
        ({"pattern": "x", "top_logprobs": [["Yes", "high"]]}, "a token and a number"),
        ({"pattern": "x", "top_logprobs": SCRIPTED, "reply": "Yes"}, "unknown logprob rule"),
    ):
        with pytest.raises(ValueError, match=message):
            FakeConfig(logprob_rules=[bad])
    made = FakeConfig(logprob_rules=[{"pattern": "sky", "top_logprobs": SCRIPTED}])
    again = FakeConfig(**made.to_dict())
    assert again.logprob_rules[0].top_logprobs == made.logprob_rules[0].top_logprobs
