"""fakellm, the fake OpenAI server: it must speak the wire format the official ``openai`` SDK
expects, answer deterministically (scripted rules, schema-shaped JSON), inject faults
reproducibly and record what clients did, because retry, rate-limit and concurrency tests
of the scoring code are only as trustworthy as this fake."""

from __future__ import annotations

import asyncio
import http.client
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import jsonschema
import openai
import pydantic
import pytest
from openai import AsyncOpenAI

from fakellm.config import FakeConfig, Rule, is_loopback_host, load_rules
from fakellm.schema import generate_from_schema
from fakellm.server import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]

RUBRIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "criteria": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "points": {"type": "number", "minimum": -10, "maximum": 10},
                    "category": {
                        "type": "string",
                        "enum": ["essential", "important", "optional", "pitfall"],
                    },
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["text", "points", "category"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["criteria"],
    "additionalProperties": False,
}


def schema_format(schema: dict[str, Any], name: str = "rubric") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(FakeConfig()) as srv:
        yield srv


def with_client(
    server: FakeLLMServer,
    body: Callable[[AsyncOpenAI], Awaitable[Any]],
    **client_options: Any,
) -> Any:
    """Run ``body(client)`` with a real AsyncOpenAI client pointed at the fake."""

    async def main() -> Any:
        async with AsyncOpenAI(
            base_url=server.url + "/v1", api_key="anything", max_retries=0, **client_options
        ) as client:
            return await body(client)

    return asyncio.run(main())


def messages(user: str, system: str = "You are a careful grader.") -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def http_call(
    server: FakeLLMServer, method: str, path: str, payload: Any = None
) -> tuple[int, dict[str, str], Any]:
    """One plain HTTP request (no SDK) for the control endpoints."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        body = None if payload is None else json.dumps(payload)
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# Through the official SDK


def test_models_list(server: FakeLLMServer) -> None:
    async def ids(client: AsyncOpenAI) -> list[str]:
        return [m.id async for m in client.models.list()]

    assert with_client(server, ids) == ["fake-judge"]
    server.configure(models=["judge-a", "judge-b"])
    assert with_client(server, ids) == ["judge-a", "judge-b"]
    status, _, body = http_call(server, "GET", "/v1/models")
    assert status == 200
    assert body["object"] == "list"
    assert body["data"][0] == {
        "id": "judge-a",
        "object": "model",
        "owned_by": "fakellm",
        "created": 0,
    }


def test_rule_scripted_replies_first_match_wins(server: FakeLLMServer) -> None:
    server.configure(
        rules=[
            Rule("chest pain", "Call emergency services."),
            Rule(r"dose of \w+ for", {"criteria": [{"text": "dose", "points": 5}]}, regex=True),
            Rule("pain", "second rule, never reached for chest pain"),
        ]
    )

    async def ask(client: AsyncOpenAI) -> list[str | None]:
        out = []
        for prompt in ("I have chest pain", "What dose of ibuprofen for a child?", "back pain"):
            answer = await client.chat.completions.create(
                model="fake-judge", messages=messages(prompt), temperature=0
            )
            out.append(answer.choices[0].message.content)
        return out

    first, second, third = with_client(server, ask)
    assert first == "Call emergency services."
    assert json.loads(second) == {"criteria": [{"text": "dose", "points": 5}]}
    assert third == "second rule, never reached for chest pain"


def test_rules_load_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            [
                {"pattern": "hello", "reply": "hi"},
                {"pattern": "^grade", "reply": {"score": 3}, "regex": True},
            ]
        )
    )
    rules = load_rules(path)
    assert [r.to_dict() for r in rules] == [
        {"pattern": "hello", "reply": "hi", "regex": False},
        {"pattern": "^grade", "reply": {"score": 3}, "regex": True},
    ]
    assert rules[1].matches("grade this") and not rules[1].matches("please grade")
    assert rules[1].reply_text == '{"score": 3}'


def test_schema_reply_is_valid_and_deterministic(server: FakeLLMServer) -> None:
    async def ask(client: AsyncOpenAI) -> list[str]:
        out = []
        asthma, migraine = "Write a rubric for asthma advice", "Write a rubric for migraine"
        for prompt in (asthma, asthma, migraine):
            answer = await client.chat.completions.create(
                model="fake-judge",
                messages=messages(prompt),
                temperature=0.2,
                max_tokens=800,
                response_format=schema_format(RUBRIC_SCHEMA),  # type: ignore[arg-type]
            )
            assert answer.choices[0].finish_reason == "stop"
            out.append(answer.choices[0].message.content or "")
        return out

    first, again, other = with_client(server, ask)
    document = json.loads(first)
    jsonschema.validate(document, RUBRIC_SCHEMA)
    jsonschema.validate(json.loads(other), RUBRIC_SCHEMA)
    assert first == again
    assert first != other
    assert len(document["criteria"]) == 3  # max(minItems, 3)
    for criterion in document["criteria"]:
        assert set(criterion) == {"text", "points", "category", "tags"}  # optional ones too
        assert 3 <= len(criterion["text"].split()) <= 8


class Criterion(pydantic.BaseModel):
    text: str = pydantic.Field(min_length=20, max_length=60)
    points: int = pydantic.Field(ge=-10, le=10)
    category: Literal["essential", "important", "optional", "pitfall"]
    rationale: str | None = None


class Rubric(pydantic.BaseModel):
    title: str
    criteria: list[Criterion] = pydantic.Field(min_length=5, max_length=8)
    weights: list[float] = pydantic.Field(max_length=2)
    score: float = pydantic.Field(gt=0, lt=1)
    approved: bool
    reviewer: Criterion | None


REALISTIC_SCHEMAS: dict[str, dict[str, Any]] = {
    "rubric": RUBRIC_SCHEMA,
    "pydantic_refs_and_nullable": Rubric.model_json_schema(),
    "grade": {
        "type": "object",
        "properties": {
            "met": {"type": "boolean"},
            "score": {"type": "integer", "exclusiveMinimum": 0, "maximum": 4},
            "confidence": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "explanation": {"type": "string", "minLength": 80},
            "label": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 5}]},
            "ids": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
            "kind": {"const": "grade"},
            "step": {"type": "number", "multipleOf": 0.5, "minimum": 2, "maximum": 4},
        },
        "required": ["met", "score", "explanation"],
    },
    "array_root": {
        "type": "array",
        "minItems": 2,
        "maxItems": 2,
        "items": {"oneOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]},
    },
    "recursive": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
            }
        },
        "$ref": "#/$defs/node",
    },
}


@pytest.mark.parametrize("name", sorted(REALISTIC_SCHEMAS))
def test_generated_documents_are_valid(name: str) -> None:
    schema = REALISTIC_SCHEMAS[name]
    validator = jsonschema.Draft202012Validator(schema)
    for prompt in ("first prompt", "second prompt", "third prompt with more words"):
        document = generate_from_schema(schema, prompt)
        errors = [e.message for e in validator.iter_errors(document)]
        assert not errors, (document, errors)
        assert generate_from_schema(schema, prompt) == document


def test_generated_documents_honour_sizes() -> None:
    document = generate_from_schema(Rubric.model_json_schema(), "prompt")
    assert len(document["criteria"]) == 5
    assert len(document["weights"]) == 2
    assert document["reviewer"] is not None  # nullable: the first non-null option
    grade = generate_from_schema(REALISTIC_SCHEMAS["grade"], "prompt")
    assert grade["confidence"] is not None and grade["label"] is not None
    assert len(grade["explanation"]) >= 80 and len(grade["label"]) <= 5


def test_json_object_and_plain_text_fallbacks(server: FakeLLMServer) -> None:
    async def ask(client: AsyncOpenAI) -> tuple[str, str, str]:
        json_answer = await client.chat.completions.create(
            model="fake-judge",
            messages=messages("Summarize"),
            response_format={"type": "json_object"},
        )
        plain = await client.chat.completions.create(
            model="fake-judge", messages=messages("Summarize")
        )
        plain_again = await client.chat.completions.create(
            model="fake-judge", messages=messages("Summarize")
        )
        return (
            json_answer.choices[0].message.content or "",
            plain.choices[0].message.content or "",
            plain_again.choices[0].message.content or "",
        )

    json_content, plain, plain_again = with_client(server, ask)
    answer = json.loads(json_content)
    assert list(answer) == ["answer"] and 3 <= len(answer["answer"].split()) <= 8
    assert plain == plain_again and 3 <= len(plain.split()) <= 8


def test_usage_in_every_answer_summed_in_stats_with_cached_prefix(server: FakeLLMServer) -> None:
    system = "S" * 400  # 100 tokens

    async def ask(client: AsyncOpenAI) -> list[Any]:
        out = []
        for user in ("u" * 40, "v" * 40, "w" * 40):
            answer = await client.chat.completions.create(
                model="judge-x", messages=messages(user, system=system)
            )
            out.append(answer)
        out.append(
            await client.chat.completions.create(
                model="judge-y", messages=messages("w" * 40, system="another system prompt")
            )
        )
        return out

    answers = with_client(server, ask)
    cached = [a.usage.prompt_tokens_details.cached_tokens for a in answers]
    assert cached == [0, 100, 100, 0]
    prompt_chars = [440, 440, 440, len("another system prompt") + 40]
    for answer, chars in zip(answers, prompt_chars, strict=True):
        usage = answer.usage
        assert usage.prompt_tokens == -(-chars // 4)  # ceil(characters / 4)
        assert usage.completion_tokens == -(-len(answer.choices[0].message.content) // 4)
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert answers[0].model == "judge-x" and answers[3].model == "judge-y"
    stats = server.stats()
    assert stats["requests"] == 4 and stats["by_outcome"]["ok"] == 4
    assert stats["by_model"] == {"judge-x": 3, "judge-y": 1}
    assert stats["usage"] == {
        "prompt_tokens": sum(a.usage.prompt_tokens for a in answers),
        "completion_tokens": sum(a.usage.completion_tokens for a in answers),
        "cached_tokens": 200,
    }
    server.reset()  # forgets the prefix cache too
    assert with_client(server, ask)[0].usage.prompt_tokens_details.cached_tokens == 0
    assert server.stats()["requests"] == 4


# --------------------------------------------------------------------------------------
# Faults


def test_429_carries_retry_after(server: FakeLLMServer) -> None:
    server.configure(rate_429=1.0, retry_after=0.05)

    async def ask(client: AsyncOpenAI) -> None:
        await client.chat.completions.create(model="fake-judge", messages=messages("hi"))

    with pytest.raises(openai.RateLimitError) as caught:
        with_client(server, ask)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0.05"
    assert caught.value.response.headers["retry-after-ms"] == "50"
    error = caught.value.response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    stats = server.stats()
    assert stats["by_outcome"]["429"] == 1 and stats["usage"]["prompt_tokens"] == 0


def test_500_is_an_internal_server_error(server: FakeLLMServer) -> None:
    server.configure(rate_500=1.0)

    async def ask(client: AsyncOpenAI) -> None:
        await client.chat.completions.create(model="fake-judge", messages=messages("hi"))

    with pytest.raises(openai.InternalServerError) as caught:
        with_client(server, ask)
    assert caught.value.status_code == 500
    assert caught.value.response.json()["error"]["type"] == "server_error"
    assert server.stats()["by_outcome"]["500"] == 1


def test_timeout_hangs_without_blocking_other_connections() -> None:
    with FakeLLMServer(FakeConfig(rate_timeout=1.0, hang_seconds=20)) as server:

        async def scenario(client: AsyncOpenAI) -> tuple[BaseException | None, str | None]:
            hung = asyncio.create_task(
                client.chat.completions.create(
                    model="fake-judge", messages=messages("hang"), timeout=1.0
                )
            )
            while server.stats()["in_flight"] == 0:
                await asyncio.sleep(0.01)
            server.configure(rate_timeout=0.0)
            answer = await client.chat.completions.create(
                model="fake-judge", messages=messages("fine"), timeout=1.0
            )
            assert not hung.done()  # still hanging while the other one was answered
            results = await asyncio.gather(hung, return_exceptions=True)
            error = results[0] if isinstance(results[0], BaseException) else None
            # The abandoned request stops counting as in flight once the client hung up.
            deadline = time.monotonic() + 5
            while server.stats()["in_flight"] and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert server.stats()["in_flight"] == 0
            return error, answer.choices[0].message.content

        error, content = with_client(server, scenario)
        assert isinstance(error, openai.APITimeoutError)
        assert content
        stats = server.stats()
        assert stats["by_outcome"]["timeout"] == 1 and stats["by_outcome"]["ok"] == 1
        started = time.monotonic()
    assert time.monotonic() - started < 5  # stop() cancels the still-hanging handler


def test_malformed_content_is_not_json_but_billed(server: FakeLLMServer) -> None:
    server.configure(rate_malformed=1.0)

    async def ask(client: AsyncOpenAI) -> Any:
        return await client.chat.completions.create(
            model="fake-judge",
            messages=messages("Write a rubric"),
            response_format=schema_format(RUBRIC_SCHEMA),  # type: ignore[arg-type]
        )

    answer = with_client(server, ask)
    content = answer.choices[0].message.content
    assert content.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert answer.usage.completion_tokens > 0
    stats = server.stats()
    assert stats["by_outcome"]["malformed"] == 1
    assert stats["usage"]["prompt_tokens"] == answer.usage.prompt_tokens
    assert stats["usage"]["completion_tokens"] == answer.usage.completion_tokens


def run_sequence(server: FakeLLMServer, count: int) -> list[str]:
    """``count`` sequential raw requests; the outcome of each as the client saw it."""
    body = json.dumps({"messages": messages("grade"), "response_format": {"type": "json_object"}})
    outcomes: list[str] = []
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(count):
        try:
            conn.request("POST", "/v1/chat/completions", body=body)
            response = conn.getresponse()
            data = response.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            outcomes.append("timeout")  # the fake dropped the connection after hanging
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            continue
        if response.status != 200:
            outcomes.append(str(response.status))
            continue
        content = json.loads(data)["choices"][0]["message"]["content"]
        try:
            json.loads(content)
            outcomes.append("ok")
        except json.JSONDecodeError:
            outcomes.append("malformed")
    conn.close()
    return outcomes


def test_fault_rates_are_near_configured_and_reproducible(server: FakeLLMServer) -> None:
    rates = {"429": 0.1, "500": 0.05, "timeout": 0.05, "malformed": 0.1}
    server.configure(
        rate_429=rates["429"],
        rate_500=rates["500"],
        rate_timeout=rates["timeout"],
        rate_malformed=rates["malformed"],
        hang_seconds=0.0,
        retry_after=0.01,
        seed=7,
    )
    first = run_sequence(server, 400)
    stats = server.stats()
    for outcome, rate in rates.items():
        assert abs(first.count(outcome) - 400 * rate) <= 20, (outcome, first.count(outcome))
        assert stats["by_outcome"][outcome] == first.count(outcome)
    assert stats["requests"] == 400 and stats["by_outcome"]["ok"] == first.count("ok")

    server.reset()  # restarts the draws from the seed
    assert run_sequence(server, 400) == first
    server.configure(seed=8)
    assert run_sequence(server, 400) != first


def test_latency_and_max_in_flight(server: FakeLLMServer) -> None:
    server.configure(latency=0.05, latency_jitter=0.01)

    async def burst(client: AsyncOpenAI, cap: int) -> float:
        gate = asyncio.Semaphore(cap)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(model="fake-judge", messages=messages(f"q{i}"))

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(20)))
        return time.monotonic() - started

    elapsed = with_client(server, lambda client: burst(client, 20))
    stats = server.stats()
    assert 10 <= stats["max_in_flight"] <= 20
    assert elapsed >= 0.05
    server.reset()
    with_client(server, lambda client: burst(client, 4))
    assert server.stats()["max_in_flight"] <= 4


def test_arrivals_allow_window_checks(server: FakeLLMServer) -> None:
    before = time.monotonic()
    for _ in range(5):
        assert http_call(server, "POST", "/v1/chat/completions", {"messages": messages("x")})[0]
    after = time.monotonic()
    arrivals = server.stats()["arrivals"]
    assert len(arrivals) == 5 and arrivals == sorted(arrivals)
    assert before <= arrivals[0] and arrivals[-1] <= after
    window = 0.5
    busiest = max(sum(1 for t in arrivals if s <= t < s + window) for s in arrivals)
    assert busiest <= 5


# --------------------------------------------------------------------------------------
# HTTP details and control endpoints


def test_control_endpoints(server: FakeLLMServer) -> None:
    status, _, body = http_call(
        server,
        "POST",
        "/_config",
        {"rate_429": 1.0, "retry_after": 2, "rules": [{"pattern": "a", "reply": "b"}]},
    )
    assert status == 200
    assert body["config"]["rate_429"] == 1.0
    assert body["config"]["rules"] == [{"pattern": "a", "reply": "b", "regex": False}]
    status, headers, _ = http_call(server, "POST", "/v1/chat/completions", {"messages": [{}]})
    assert status == 429 and headers["Retry-After"] == "2"
    assert http_call(server, "POST", "/_config", {"rate_429": 2})[0] == 400
    assert http_call(server, "POST", "/_config", {"no_such_field": 1})[0] == 400
    assert http_call(server, "POST", "/_config", {"rate_429": 0})[0] == 200
    assert http_call(server, "POST", "/v1/chat/completions", {"messages": messages("a")})[0] == 200

    status, _, stats = http_call(server, "GET", "/_stats")
    assert status == 200
    assert stats["requests"] == 2 and stats["by_outcome"]["429"] == 1
    assert set(stats) >= {"requests", "by_outcome", "arrivals", "usage", "max_in_flight"}
    assert http_call(server, "POST", "/_reset")[2] == {"ok": True}
    assert http_call(server, "GET", "/_stats")[2]["requests"] == 0
    assert http_call(server, "GET", "/nowhere")[0] == 404
    assert http_call(server, "GET", "/v1/chat/completions")[0] == 405


def test_bad_chat_requests_get_400(server: FakeLLMServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=b"{not json")
    response = conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"]["type"] == "invalid_request_error"
    conn.close()
    assert http_call(server, "POST", "/v1/chat/completions", {"messages": []})[0] == 400
    payload = {"messages": messages("x"), "stream": True}
    assert http_call(server, "POST", "/v1/chat/completions", payload)[0] == 400
    unsatisfiable = {"$ref": "#/$defs/loop", "$defs": {"loop": {"$ref": "#/$defs/loop"}}}
    payload = {"messages": messages("x"), "response_format": schema_format(unsatisfiable)}
    assert http_call(server, "POST", "/v1/chat/completions", payload)[0] == 400
    stats = server.stats()
    assert stats["by_outcome"]["400"] == 4 and stats["by_outcome"]["ok"] == 0


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes, bytes]:
    """(head, body, rest) of the next response on a raw socket."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        buffer += chunk
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(buffer) < length:
        buffer += sock.recv(65536)
    return head, buffer[:length], buffer[length:]


def test_keep_alive_pipelining_and_connection_close(server: FakeLLMServer) -> None:
    body = json.dumps({"messages": messages("pipelined")}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + request + b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = b""
        for _ in range(3):
            head, payload, rest = read_response(sock, rest)
            assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in head
            assert json.loads(payload)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, rest = read_response(sock, rest)
        assert b"Connection: close" in head
        assert rest == b"" and sock.recv(1) == b""  # the server closed its side
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")  # HTTP/1.0 closes by default
        head, _, _ = read_response(sock, b"")
        assert b"Connection: close" in head and sock.recv(1) == b""


def test_async_context_manager_serves_in_current_loop() -> None:
    async def main() -> str | None:
        async with (
            FakeLLMServer() as server,
            AsyncOpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0) as client,
        ):
            answer = await client.chat.completions.create(
                model="fake-judge", messages=messages("hello")
            )
            return answer.choices[0].message.content

    assert asyncio.run(main())


def test_never_serves_beyond_loopback() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("localhost")
    assert is_loopback_host("::1")
    everywhere = "0.0.0.0"  # noqa: S104 - only to check that it is refused
    assert not is_loopback_host(everywhere) and not is_loopback_host("example.com")
    with pytest.raises(ValueError, match="non-loopback"):
        FakeLLMServer(host=everywhere)


# --------------------------------------------------------------------------------------
# CLI


def test_cli_serves_scripted_rules_until_terminated(tmp_path: Path) -> None:
    script = tmp_path / "rules.json"
    script.write_text(json.dumps([{"pattern": "ping", "reply": "pong"}]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fakellm",
            "--port",
            "0",
            "--model",
            "cli-judge",
            "--script",
            str(script),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the CLI did not announce itself"
        line = proc.stdout.readline().strip()
        assert line.startswith("fakellm listening on http://127.0.0.1:") and line.endswith("/v1")
        port = int(line.rsplit(":", 1)[1].removesuffix("/v1"))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/models")
        assert json.loads(conn.getresponse().read())["data"][0]["id"] == "cli-judge"
        payload = json.dumps({"model": "cli-judge", "messages": messages("ping")})
        conn.request("POST", "/v1/chat/completions", body=payload)
        answer = json.loads(conn.getresponse().read())
        assert answer["choices"][0]["message"]["content"] == "pong"
        conn.close()
    finally:
        proc.terminate()
        returncode = proc.wait(timeout=10)
    assert returncode == 0, proc.stderr.read() if proc.stderr else ""


def test_cli_refuses_non_loopback_host() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fakellm", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "refusing to bind" in out.stderr and "--allow-remote" in out.stderr
    assert "listening" not in out.stdout


# --------------------------------------------------------------------------------------
# Throughput sanity check (prints the rate; asserts correctness only)


async def hammer(port: int, total: int, connections: int) -> list[int]:
    """``total`` chat requests over ``connections`` keep-alive connections, raw HTTP."""
    statuses: list[int] = []

    async def worker(index: int, count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in range(count):
            body = json.dumps({"messages": messages(f"request {index}-{n}")}).encode()
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            statuses.append(int(head.split(b" ", 2)[1]))
        writer.close()
        await writer.wait_closed()

    share, extra = divmod(total, connections)
    await asyncio.gather(*(worker(i, share + (i < extra)) for i in range(connections)))
    return statuses


def test_throughput_sanity(server: FakeLLMServer) -> None:
    started = time.perf_counter()
    statuses = asyncio.run(hammer(server.port, 2000, 64))
    elapsed = time.perf_counter() - started
    print(
        f"fakellm: 2000 requests over 64 keep-alive connections in {elapsed:.2f}s "
        f"= {2000 / elapsed:.0f} requests/s (client and server in one process)"
    )
    assert statuses == [200] * 2000
    stats = server.stats()
    assert stats["requests"] == 2000 and stats["max_in_flight"] >= 1
