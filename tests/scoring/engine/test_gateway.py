"""The LLM gateway against a real HTTP server on loopback (fakellm), through the real SDK.

What is checked is what the science depends on: structured answers that validate, failures
that end as a GatewayError of the right kind, retries that follow the server's Retry-After,
token and cost totals that equal the server's own count exactly, a cache that costs nothing,
and an API key that never shows up anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import random
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from fakellm.config import FakeConfig, Rule
from fakellm.schema import generate_from_schema
from fakellm.server import FakeLLMServer
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_cache import MemoryCache, cache_key
from scoring.engine.gateway_retry import estimate_tokens
from scoring.engine.gateway_types import CallResult, EndpointConfig, GatewayError, Usage
from scoring.engine.netguard import NetworkPolicy
from scoring.engine.structured import validate

KEY = "sk-test-9f8e7d6c5b4a-DO-NOT-LEAK"
# The servers of these tests listen on loopback, which requests reach only when allowed.
LOOPBACK = NetworkPolicy.parse(["127.0.0.1"])

RUBRIC: dict[str, Any] = {
    "type": "object",
    "required": ["criteria"],
    "additionalProperties": False,
    "properties": {
        "criteria": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["text", "points"],
                "additionalProperties": False,
                "properties": {
                    "text": {"type": "string"},
                    "points": {"type": "number", "minimum": -10, "maximum": 10},
                },
            },
        }
    },
}
VALID = {"criteria": [{"text": "Mentions the dose", "points": 5}]}
INVALID = {"criteria": [{"text": "Mentions the dose", "points": "five"}]}
REPAIR_MARKER = "Your previous answer could not be used"

CLEAN = {
    "latency": 0.0,
    "latency_jitter": 0.0,
    "rate_429": 0.0,
    "rate_500": 0.0,
    "rate_timeout": 0.0,
    "rate_malformed": 0.0,
    "retry_after": 0.01,
    "hang_seconds": 1.0,
    "seed": 1,
    "rules": [],
}


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer(FakeConfig(**CLEAN)) as srv:
        yield srv


@pytest.fixture
def fake(server):
    """The module's server, fault-free with zeroed stats (hung requests of earlier tests gone)."""
    deadline = time.monotonic() + 5
    while server.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    server.configure(**CLEAN)
    server.reset()
    return server


def endpoint(url: str, **changes: Any) -> EndpointConfig:
    changes.setdefault("network", LOOPBACK)
    return EndpointConfig(
        name="fake", base_url=f"{url}/v1", model="fake-judge", api_key=KEY, **changes
    )


class RecordingSleep:
    """Stands in for asyncio.sleep: records delays, doesn't wait, can react (e.g. heal faults)."""

    def __init__(self, on_sleep=None) -> None:
        self.delays: list[float] = []
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.delays))
        await asyncio.sleep(0)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def server_usage(srv: FakeLLMServer) -> tuple[int, int, int]:
    u = srv.stats()["usage"]
    return u["prompt_tokens"], u["completion_tokens"], u["cached_tokens"]


def tokens(usage: Usage) -> tuple[int, int, int]:
    return usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens


async def call(config: EndpointConfig, *args: Any, gateway_kw: dict | None = None, **kw: Any):
    async with Gateway(config, **(gateway_kw or {})) as gw:
        return await gw.chat(*args, **kw)


async def failing(config: EndpointConfig, *args: Any, gateway_kw=None, **kw: Any) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await call(config, *args, gateway_kw=gateway_kw, **kw)
    return info.value


# --- answers -----------------------------------------------------------------------------------


def test_plain_call(fake):
    result = asyncio.run(call(endpoint(fake.url), user("Say something about dosage.")))
    assert isinstance(result, CallResult)
    assert result.content and result.parsed is None
    assert (result.attempts, result.cached, result.model) == (1, False, "fake-judge")
    assert result.usage.calls == 1 and tokens(result.usage) == server_usage(fake)
    assert result.latency > 0 and len(result.cache_key) == 64


def test_schema_call_returns_validated_json(fake):
    text = "Write a rubric for a question about insulin."
    result = asyncio.run(call(endpoint(fake.url), user(text), schema=RUBRIC, schema_name="rubric"))
    validate(result.parsed, RUBRIC)
    # fakellm generated it from the json_schema response_format we sent
    assert result.parsed == generate_from_schema(RUBRIC, text)
    assert json.loads(result.content) == result.parsed
    assert result.attempts == 1


def test_fenced_json_is_accepted(fake):
    fenced = "Here is the rubric:\n```json\n" + json.dumps(VALID, indent=2) + "\n```\nDone."
    fake.configure(rules=[Rule("fenced please", fenced)])
    result = asyncio.run(call(endpoint(fake.url), user("fenced please"), schema=RUBRIC))
    assert result.parsed == VALID and result.attempts == 1
    assert result.content == fenced  # the raw answer is kept as it came


def test_malformed_answer_is_repaired_and_both_answers_count(fake):
    fake.configure(rules=[Rule(REPAIR_MARKER, VALID), Rule("repair me", INVALID)])
    result = asyncio.run(call(endpoint(fake.url), user("repair me"), schema=RUBRIC))
    assert result.parsed == VALID
    assert result.attempts == 2 and result.usage.calls == 2
    assert tokens(result.usage) == server_usage(fake)
    assert fake.stats()["requests"] == 2


def test_malformed_twice_is_an_error_with_usage(fake):
    fake.configure(rules=[Rule("hopeless", "I would rather not answer in JSON.")])
    error = asyncio.run(failing(endpoint(fake.url), user("hopeless"), schema=RUBRIC))
    assert error.kind == "malformed" and error.attempts == 2
    assert "no JSON object or array" in error.message and "repair" in error.message
    assert error.usage.calls == 2 and tokens(error.usage) == server_usage(fake)
    assert error.usage.prompt_tokens > 0


def test_truncated_json_from_fault_injection_is_malformed(fake):
    fake.configure(rate_malformed=1.0)
    error = asyncio.run(failing(endpoint(fake.url), user("rubric please"), schema=RUBRIC))
    assert error.kind == "malformed" and "was the answer cut off?" in error.message
    assert tokens(error.usage) == server_usage(fake)


# --- retries -----------------------------------------------------------------------------------


def test_429_honours_retry_after(fake):
    fake.configure(rate_429=1.0, retry_after=0.25)
    sleep = RecordingSleep(on_sleep=lambda n: fake.configure(rate_429=0.0))
    result = asyncio.run(call(endpoint(fake.url), user("hi"), gateway_kw={"sleep": sleep}))
    assert result.attempts == 2
    assert len(sleep.delays) == 1
    # retry-after-ms (250) is used, plus at most 10% + 10 ms of jitter: not the 0.5 s backoff
    assert 0.25 <= sleep.delays[0] <= 0.25 * 1.1 + 0.01
    assert fake.stats()["by_outcome"]["429"] == 1 and fake.stats()["by_outcome"]["ok"] == 1


def test_429_gives_up_after_max_retries(fake):
    fake.configure(rate_429=1.0, retry_after=0.01)
    sleep = RecordingSleep()
    config = endpoint(fake.url, max_retries=2)
    error = asyncio.run(failing(config, user("hi"), gateway_kw={"sleep": sleep}))
    assert (error.kind, error.status, error.attempts) == ("rate_limited", 429, 3)
    assert error.message == "rate limited by the server (HTTP 429) (gave up after 2 retries)"
    assert len(sleep.delays) == 2 and all(0.01 <= d <= 0.021 for d in sleep.delays)
    assert error.usage == Usage() and fake.stats()["requests"] == 3


def test_500_uses_exponential_backoff_with_full_jitter(fake):
    fake.configure(rate_500=1.0)
    sleep = RecordingSleep()
    config = endpoint(fake.url, max_retries=3)
    kw = {"sleep": sleep, "rng": random.Random(42)}
    error = asyncio.run(failing(config, user("hi"), gateway_kw=kw))
    assert (error.kind, error.status, error.attempts) == ("server_error", 500, 4)
    expected = random.Random(42)
    assert sleep.delays == [expected.uniform(0, 0.5 * 2**n) for n in range(3)]


def test_500_then_success(fake):
    fake.configure(rate_500=1.0)
    sleep = RecordingSleep(on_sleep=lambda n: n == 2 and fake.configure(rate_500=0.0))
    result = asyncio.run(call(endpoint(fake.url), user("hi"), gateway_kw={"sleep": sleep}))
    assert result.attempts == 3 and len(sleep.delays) == 2
    assert sleep.delays[0] <= 0.5 and sleep.delays[1] <= 1.0


def test_timeout_is_retried(fake):
    fake.configure(rate_timeout=1.0, hang_seconds=1.0)
    sleep = RecordingSleep(on_sleep=lambda n: fake.configure(rate_timeout=0.0))
    config = endpoint(fake.url, timeout=0.3)
    started = time.monotonic()
    result = asyncio.run(call(config, user("hi"), gateway_kw={"sleep": sleep}))
    assert result.attempts == 2 and len(sleep.delays) == 1
    assert 0.3 <= time.monotonic() - started < 1.0  # gave up on the hung request at 0.3 s
    assert fake.stats()["by_outcome"]["timeout"] == 1


def test_timeouts_exhaust_retries(fake):
    fake.configure(rate_timeout=1.0, hang_seconds=1.0)
    config = endpoint(fake.url, timeout=0.3, max_retries=1)
    error = asyncio.run(failing(config, user("hi"), gateway_kw={"sleep": RecordingSleep()}))
    assert (error.kind, error.attempts, error.status) == ("timeout", 2, None)
    assert "0.3 s" in error.message


def test_excessive_retry_after_is_not_waited_for(fake):
    fake.configure(rate_429=1.0, retry_after=600)
    sleep = RecordingSleep()
    error = asyncio.run(failing(endpoint(fake.url), user("hi"), gateway_kw={"sleep": sleep}))
    assert (error.kind, error.attempts, sleep.delays) == ("rate_limited", 1, [])
    assert "asked to wait 600 s" in error.message


def test_limiter_is_acquired_before_every_attempt_with_the_estimate(fake):
    fake.configure(rate_500=1.0)
    sleep = RecordingSleep(on_sleep=lambda n: fake.configure(rate_500=0.0))

    class RecordingLimiter:
        def __init__(self) -> None:
            self.tokens: list[int] = []

        async def acquire(self, tokens: int) -> None:
            self.tokens.append(tokens)

    limiter = RecordingLimiter()
    config = endpoint(fake.url, max_tokens=100)
    messages = user("x" * 41)
    kw = {"sleep": sleep, "limiter": limiter}
    result = asyncio.run(call(config, messages, gateway_kw=kw))
    assert result.attempts == 2
    assert limiter.tokens == [11 + 100, 11 + 100]  # ceil(41 / 4) + max_tokens, per attempt


def test_bad_config_is_a_config_error():
    with pytest.raises(GatewayError) as info:
        Gateway(EndpointConfig(name="e", base_url="", model="m", rpm=0, max_concurrency=0))
    assert info.value.kind == "config"
    for problem in ("base_url is empty", "rpm must be at least 1", "max_concurrency"):
        assert problem in info.value.message


def test_gateway_error_pickles_with_its_fields():
    error = GatewayError("malformed", "bad", usage=Usage(1, 2, 0, 0.1, 1), attempts=2, status=None)
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.kind, copy.message, copy.usage, copy.attempts) == (
        "malformed",
        "bad",
        error.usage,
        2,
    )
    assert str(copy) == "malformed: bad"


def test_400_is_not_retried(fake):
    sleep = RecordingSleep()
    error = asyncio.run(failing(endpoint(fake.url), [], gateway_kw={"sleep": sleep}))
    assert (error.kind, error.status, error.attempts) == ("client_error", 400, 1)
    # A status and fixed words: what the server said stays out of it (and in the log).
    assert error.message == "request rejected (HTTP 400: the server refused the request)"
    assert sleep.delays == [] and fake.stats()["requests"] == 1


def test_connection_refused_is_a_connection_error():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = endpoint(f"http://127.0.0.1:{port}", max_retries=2)
    sleep = RecordingSleep()
    error = asyncio.run(failing(config, user("hi"), gateway_kw={"sleep": sleep}))
    assert (error.kind, error.attempts, len(sleep.delays)) == ("connection", 3, 2)


# --- concurrency and exact accounting under faults ---------------------------------------------


def test_concurrency_cap_holds_under_50_concurrent_calls(fake):
    fake.configure(latency=0.05)

    async def main() -> list[CallResult]:
        async with Gateway(endpoint(fake.url, max_concurrency=4)) as gw:
            return await asyncio.gather(*(gw.chat(user(f"question {i}")) for i in range(50)))

    results = asyncio.run(main())
    assert len(results) == 50
    assert fake.stats()["max_in_flight"] == 4  # never above the cap, and the cap is used


def test_usage_is_exact_under_faults(fake):
    """200 calls, 20% transport faults and 5% malformed answers: every call ends as a valid
    result or a GatewayError, and their Usage sums to the server's count exactly."""
    fake.configure(
        rate_429=0.07, rate_500=0.07, rate_timeout=0.06, rate_malformed=0.05,
        retry_after=0.01, hang_seconds=1.0, seed=5,
        rules=[Rule("hopeless", "no JSON today")],
    )  # fmt: skip
    system = {"role": "system", "content": "You write grading rubrics for medical answers. " * 8}

    async def main() -> list[CallResult | BaseException]:
        config = endpoint(fake.url, timeout=0.3, max_retries=1, max_concurrency=16)
        async with Gateway(config, sleep=RecordingSleep()) as gw:
            calls = [
                gw.chat(
                    [system, {"role": "user", "content": f"Question {i}" + " hopeless" * (i < 10)}],
                    schema=RUBRIC,
                )
                for i in range(200)
            ]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(main())
    results = [o for o in outcomes if isinstance(o, CallResult)]
    errors = [o for o in outcomes if isinstance(o, GatewayError)]
    assert len(results) + len(errors) == 200  # nothing else escaped
    for result in results:
        validate(result.parsed, RUBRIC)
    assert errors and {e.kind for e in errors} <= {
        "rate_limited",
        "server_error",
        "timeout",
        "malformed",
    }
    assert any(r.attempts > 1 for r in results)

    total = Usage()
    for item in [*results, *errors]:
        total += item.usage
    stats = fake.stats()
    assert tokens(total) == server_usage(fake)
    assert total.cached_tokens > 0
    assert total.calls == stats["by_outcome"]["ok"] + stats["by_outcome"]["malformed"]
    assert sum(o.attempts for o in [*results, *errors]) == stats["requests"]
    faults = sum(stats["by_outcome"][k] for k in ("429", "500", "timeout", "malformed"))
    assert faults > 20


# --- cache, cost -------------------------------------------------------------------------------


def test_cache_hit_makes_no_request_and_costs_nothing(fake):
    cache = MemoryCache()
    config = endpoint(fake.url, price_input_per_m=1.0, price_output_per_m=2.0)

    async def main() -> tuple[CallResult, ...]:
        async with Gateway(config, cache=cache) as gw:
            msgs = user("A rubric, please.")
            first = await gw.chat(msgs, schema=RUBRIC, template_version="t1")
            second = await gw.chat(msgs, schema=RUBRIC, template_version="t1")
            other_template = await gw.chat(msgs, schema=RUBRIC, template_version="t2")
            bypass = await gw.chat(msgs, schema=RUBRIC, template_version="t1", use_cache=False)
            return first, second, other_template, bypass

    first, second, other_template, bypass = asyncio.run(main())
    assert first.cached is False and first.usage.cost > 0
    assert second.cached is True and second.usage == Usage() and second.usage.cost == 0
    assert second.attempts == 0 and second.cache_key == first.cache_key
    assert (second.content, second.parsed, second.model) == (
        first.content,
        first.parsed,
        "fake-judge",
    )
    assert other_template.cached is False and bypass.cached is False
    assert fake.stats()["requests"] == 3  # the hit never reached the server
    assert len(cache) == 2


def test_failed_calls_are_not_cached(fake):
    fake.configure(rules=[Rule("hopeless", "nope")])
    cache = MemoryCache()

    async def main() -> None:
        async with Gateway(endpoint(fake.url), cache=cache) as gw:
            for _ in range(2):
                with pytest.raises(GatewayError):
                    await gw.chat(user("hopeless"), schema=RUBRIC)

    asyncio.run(main())
    assert len(cache) == 0 and fake.stats()["requests"] == 4


def test_cache_key_covers_what_determines_the_answer():
    base = {
        "model": "m",
        "params": {"temperature": 0.0, "max_tokens": 10},
        "template_version": "v1",
        "messages": user("x"),
        "schema": RUBRIC,
    }
    key = cache_key(**base)
    assert key == cache_key(**{**base, "params": {"max_tokens": 10, "temperature": 0.0}})
    for change in (
        {"model": "n"},
        {"params": {"temperature": 0.5, "max_tokens": 10}},
        {"template_version": "v2"},
        {"messages": user("y")},
        {"schema": None},
    ):
        assert cache_key(**{**base, **change}) != key


def test_cost_worked_example():
    config = EndpointConfig(
        name="e",
        base_url="http://x/v1",
        model="m",
        price_input_per_m=2.50,
        price_output_per_m=10.00,
        price_cached_input_per_m=1.25,
    )
    # 600 uncached input * $2.50 + 400 cached * $1.25 + 200 output * $10, per million tokens
    assert config.cost(1000, 200, 400) == pytest.approx((1500 + 500 + 2000) / 1e6)
    # cached input defaults to the input price
    assert EndpointConfig("e", "u", "m", price_input_per_m=2.5, price_output_per_m=10).cost(
        1000, 200, 400
    ) == pytest.approx((2500 + 2000) / 1e6)
    assert Usage(1, 2, 0, 0.5, 1) + Usage(10, 20, 5, 0.25, 2) == Usage(11, 22, 5, 0.75, 3)


def test_cost_from_real_answers_with_cached_prompt(fake):
    config = endpoint(
        fake.url, price_input_per_m=2.5, price_output_per_m=10.0, price_cached_input_per_m=1.25
    )
    system = {"role": "system", "content": "S" * 400}  # fakellm caches the first message

    async def main() -> tuple[CallResult, CallResult]:
        async with Gateway(config) as gw:
            first = await gw.chat([system, *user("one")])
            second = await gw.chat([system, *user("two")])
            return first, second

    first, second = asyncio.run(main())
    assert first.usage.cached_tokens == 0 and second.usage.cached_tokens == 100
    u = second.usage
    expected = ((u.prompt_tokens - 100) * 2.5 + 100 * 1.25 + u.completion_tokens * 10.0) / 1e6
    assert u.cost == pytest.approx(expected) and u.cost > 0


def test_token_estimate():
    messages = [{"role": "system", "content": "a" * 10}, {"role": "user", "content": "b" * 7}]
    assert estimate_tokens(messages, 100) == 5 + 100  # ceil(17 / 4) + max_tokens
    parts = [{"role": "user", "content": [{"type": "text", "text": "c" * 8}]}]
    assert estimate_tokens(parts, 0) == 2


# --- response_format fallback and secrets, with a small scripted server -------------------------


class ScriptedServer:
    """A minimal OpenAI-like server for what fakellm cannot simulate: an endpoint that rejects
    some response_format types, and one that echoes the caller's API key in its errors."""

    def __init__(self, rejects: set[str] = frozenset(), echo_key: bool = False) -> None:
        self.rejects, self.echo_key = rejects, echo_key
        self.formats: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self.reply(*outer.answer(body, self.headers.get("Authorization", "")))

            def do_GET(self) -> None:  # /v1/models
                models = {"object": "list", "data": [{"id": "fake-judge", "object": "model"}]}
                self.reply(*outer.refuse(self.headers.get("Authorization", "")) or (200, models))

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def refuse(self, authorization: str) -> tuple[int, dict[str, Any]] | None:
        if not self.echo_key:
            return None
        token = authorization.removeprefix("Bearer ")
        return 401, {"error": {"message": f"Incorrect API key provided: {token}."}}

    def answer(self, body: dict[str, Any], authorization: str) -> tuple[int, dict[str, Any]]:
        refusal = self.refuse(authorization)
        if refusal is not None:
            return refusal
        kind = (body.get("response_format") or {}).get("type")
        self.formats.append(kind)
        if kind in self.rejects:
            message = f"response_format type '{kind}' is not supported by this server"
            return 400, {"error": {"message": message, "type": "invalid_request_error"}}
        system = body["messages"][0]["content"]
        if "Reply with JSON only, matching this schema" in system:
            content = "```json\n" + json.dumps(VALID) + "\n```"
        else:
            content = "Free text: no schema was given to me."
        return 200, {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    ("rejects", "mode", "first_formats"),
    [
        ({"json_schema", "json_object"}, "prompt", ["json_schema", "json_object", None]),
        ({"json_schema"}, "json_object", ["json_schema", "json_object"]),
    ],
)
def test_response_format_falls_back_and_remembers(rejects, mode, first_formats):
    with ScriptedServer(rejects=rejects) as srv:

        async def main() -> tuple[CallResult, CallResult, str]:
            config = endpoint(srv.url)
            async with Gateway(config, sleep=RecordingSleep()) as gw:
                system = {"role": "system", "content": "You grade."}
                first = await gw.chat([system, *user("one")], schema=RUBRIC)
                second = await gw.chat(user("two"), schema=RUBRIC)  # no system message of its own
                return first, second, gw.format_mode

        first, second, final_mode = asyncio.run(main())
    assert final_mode == mode
    assert first.parsed == VALID and second.parsed == VALID
    assert first.attempts == len(first_formats) and second.attempts == 1  # remembered
    assert srv.formats == [*first_formats, first_formats[-1]]
    assert first.usage.calls == 1  # the rejections were not billed


def test_api_key_never_leaks(fake, caplog):
    for name in (None, "openai", "httpx2", "httpcore2", "scoring"):
        caplog.set_level(logging.DEBUG, logger=name)
    fake.configure(rules=[Rule("hopeless", "not JSON")])
    errors: list[GatewayError] = []

    async def collect(coro) -> None:
        try:
            await coro
        except GatewayError as exc:
            errors.append(exc)

    async def scenario(config: EndpointConfig, messages, *, faults=None, models=False, **kw):
        if faults is not None:
            fake.configure(**faults)
        async with Gateway(config, sleep=RecordingSleep()) as gw:
            await collect(gw.list_models() if models else gw.chat(messages, **kw))

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def main() -> None:
        cfg = endpoint(fake.url, max_retries=1, timeout=0.3)
        await scenario(cfg, user("hi"), faults={"rate_429": 1.0})
        await scenario(cfg, user("hi"), faults={"rate_429": 0.0, "rate_500": 1.0})
        await scenario(cfg, user("hi"), faults={"rate_500": 0.0, "rate_timeout": 1.0})
        await scenario(
            cfg, user("hi"), faults={"rate_timeout": 0.0, "rate_malformed": 1.0}, schema=RUBRIC
        )
        fake.configure(rate_malformed=0.0)
        await scenario(cfg, user("hopeless"), schema=RUBRIC)
        await scenario(cfg, [])
        await scenario(endpoint(closed, max_retries=1), user("hi"))
        await scenario(endpoint(closed), None, models=True)
        with ScriptedServer(echo_key=True) as echo:
            await scenario(endpoint(echo.url), user("hi"))
            await scenario(endpoint(echo.url), None, models=True)

    asyncio.run(main())
    kinds = [e.kind for e in errors]
    assert kinds == [
        "rate_limited", "server_error", "timeout", "malformed", "malformed",
        "client_error", "connection", "connection", "client_error", "client_error",
    ]  # fmt: skip
    assert errors[-2].message == "request rejected (HTTP 401: check the API key)"  # no echo
    for error in errors:
        texts = [str(error), repr(error), error.message, "".join(traceback.format_exception(error))]
        texts += [repr(vars(error))]
        assert not any(KEY in text for text in texts), error
        # The SDK's exceptions hold the request, Authorization header included: none may be
        # reachable from what the gateway raises.
        chain, link = [], error
        while link is not None:
            chain.append(link)
            link = link.__cause__ or link.__context__
        assert not any(isinstance(link, openai.OpenAIError) for link in chain), chain
    assert caplog.records, "nothing was logged: the test would prove nothing"
    assert {r.name.split(".")[0] for r in caplog.records} >= {"openai", "httpx2", "scoring"}
    for record in caplog.records:
        rendered = record.getMessage() + repr(record.args)
        if record.exc_info:
            rendered += "".join(traceback.format_exception(*record.exc_info))
        assert KEY not in rendered, record.name
    config = endpoint(fake.url)
    assert KEY not in repr(config) and KEY not in str(config)
    gateway = Gateway(config)
    assert KEY not in repr(gateway) and KEY not in str(gateway)
    asyncio.run(gateway.aclose())
