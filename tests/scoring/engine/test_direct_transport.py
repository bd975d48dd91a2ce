"""The direct transport against the OpenAI SDK's client, the reference: the same gateway call
is made once through each, against a scripted HTTP server on loopback that records every
request, and both must send the same request and end the same way (the answer, the usage,
the error's kind, message, status and attempts, and the pauses between retries).

What only the direct client does (replacing a stale kept-alive connection once, refusing a
key that cannot go into a header) is tested on its own at the end.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from fakellm.config import FakeConfig
from fakellm.server import FakeLLMServer
from scoring.engine import direct_http
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import CallResult, EndpointConfig, GatewayError
from scoring.engine.netguard import BLOCKED_MESSAGE, NetworkPolicy

KEY = "sk-direct-test-41f0c2-DO-NOT-LEAK"
LOOPBACK = NetworkPolicy.parse(["127.0.0.1"])
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["met", "reason"],
    "additionalProperties": False,
    "properties": {"met": {"type": "boolean"}, "reason": {"type": "string"}},
}
VERDICT = {"met": True, "reason": "names the dose — 5 mg"}
MESSAGES = [
    {"role": "system", "content": "You grade answers."},
    {"role": "user", "content": "Does it name the dose? «Take 5 mg twice a day.»"},
]


# --- a scripted server ---------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int

    def json(self) -> Any:
        return json.loads(self.body)


Action = Callable[[asyncio.StreamWriter], Awaitable[bool]]  # True: keep the connection


@dataclass
class Scripted:
    """An HTTP/1.1 server on loopback in the test's event loop: each request gets the next
    action of the script (an ordinary answer once the script is used up)."""

    actions: list[Action]
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def __aenter__(self) -> Scripted:
        self._stop = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ")
                headers = {}
                for line in lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                # each transport gets its own server: the port is not part of the comparison
                headers["host"] = headers.get("host", "").replace(f":{self.port}", ":PORT")
                self.requests.append(Seen(method, path, headers, body, number))
                action = self.actions.pop(0) if self.actions else reply(200, completion("ok"))
                if action is hang:
                    await self._stop.wait()
                    return
                if not await action(writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def completion(
    content: str | None,
    *,
    model: str = "fake-judge-0613",
    usage: dict[str, Any] | None = None,
    logprobs: list[tuple[str, float]] | None = None,
    finish: str = "stop",
) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish,
    }
    if logprobs is not None:
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in logprobs]
        choice["logprobs"] = {
            "content": [{"token": logprobs[0][0], "logprob": logprobs[0][1], "top_logprobs": top}]
        }
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [choice],
        "usage": usage
        or {
            "prompt_tokens": 31,
            "completion_tokens": 7,
            "total_tokens": 38,
            "prompt_tokens_details": {"cached_tokens": 16},
        },
    }


def reply(
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    close_after: bool = False,
    content_type: str = "application/json",
) -> Action:
    """An answer; ``close_after``: the server closes the connection right after it (without
    saying so), as a server does with an idle kept-alive connection."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def act(writer: asyncio.StreamWriter) -> bool:
        head = [f"HTTP/1.1 {status} Whatever", f"Content-Type: {content_type}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if chunked:
            head.append("Transfer-Encoding: chunked")
            pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        else:
            head.append(f"Content-Length: {len(data)}")
            payload = data
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        return not close_after

    return act


async def drop(writer: asyncio.StreamWriter) -> bool:
    """Close the connection without answering."""
    return False


async def reset(writer: asyncio.StreamWriter) -> bool:
    """Reset the connection (RST) without answering."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return False


async def hang(writer: asyncio.StreamWriter) -> bool:  # handled by Scripted itself
    raise AssertionError


# --- the same call through both transports ------------------------------------------------


@dataclass
class Outcome:
    requests: list[Seen]
    result: dict[str, Any]
    delays: list[float]
    connections: int
    format_mode: str


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def summary(result: CallResult | GatewayError) -> dict[str, Any]:
    if isinstance(result, GatewayError):
        return {
            "error": (result.kind, result.message, result.status, result.attempts),
            "usage": asdict(result.usage),
        }
    return {
        "content": result.content,
        "parsed": result.parsed,
        "usage": asdict(result.usage),
        "attempts": result.attempts,
        "cached": result.cached,
        "model": result.model,
        "top_logprobs": result.top_logprobs,
        "cache_key": result.cache_key,
    }


Call = Callable[[Gateway], Awaitable[Any]]


async def _one(
    transport: str,
    script: Callable[[], list[Action]],
    call: Call,
    base_url: str | None,
    changes: dict[str, Any],
) -> Outcome:
    async with Scripted(script()) as server:
        config = EndpointConfig(
            name="scripted",
            base_url=base_url or f"{server.url}/v1",
            model="fake-judge",
            api_key=KEY,
            price_input_per_m=2.0,
            price_output_per_m=8.0,
            **{"network": LOOPBACK, **changes},
        )
        sleep = RecordingSleep()
        gateway = Gateway(config, sleep=sleep, rng=random.Random(7), transport=transport)  # type: ignore[arg-type]
        assert (gateway._direct is not None) == (transport == "direct")
        try:
            result = await call(gateway)
        except GatewayError as exc:
            result = exc
        finally:
            await gateway.aclose()
        return Outcome(
            requests=server.requests,
            result=summary(result),
            delays=sleep.delays,
            connections=server.connections,
            format_mode=gateway.format_mode,
        )


def both(
    script: Callable[[], list[Action]],
    call: Call | None = None,
    *,
    base_url: str | None = None,
    **changes: Any,
) -> Outcome:
    """Run ``call`` through the SDK and through the direct client, each against a fresh
    server running ``script()``; assert that they sent the same requests and ended the same
    way; return the direct run's outcome."""
    call = call or (lambda gateway: gateway.chat(MESSAGES, use_cache=False))

    async def go() -> tuple[Outcome, Outcome]:
        sdk = await _one("sdk", script, call, base_url, changes)
        direct = await _one("direct", script, call, base_url, changes)
        return sdk, direct

    sdk, direct = asyncio.run(go())
    assert len(direct.requests) == len(sdk.requests)
    for mine, theirs in zip(direct.requests, sdk.requests, strict=True):
        assert (mine.method, mine.path) == (theirs.method, theirs.path) == ("POST", mine.path)
        for name in ("authorization", "content-type", "host", "content-length"):
            assert mine.headers.get(name) == theirs.headers.get(name), name
        assert mine.headers["authorization"] == f"Bearer {KEY}"
        assert mine.json() == theirs.json()
        assert mine.body == theirs.body  # even the bytes: the SDK's JSON encoding
    assert direct.result == sdk.result
    assert direct.delays == sdk.delays
    assert direct.format_mode == sdk.format_mode
    assert direct.connections == sdk.connections
    return direct


def error_of(outcome: Outcome) -> tuple[str, str, int | None, int]:
    assert "error" in outcome.result, outcome.result
    kind, message, status, attempts = outcome.result["error"]
    assert KEY not in message
    return kind, message, status, attempts


# --- answers ---------------------------------------------------------------------------------


def test_a_plain_answer():
    outcome = both(lambda: [reply(200, completion("The answer."))])
    assert outcome.requests[0].path == "/v1/chat/completions"
    assert outcome.result["content"] == "The answer."
    assert outcome.result["model"] == "fake-judge-0613"
    usage = outcome.result["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cached_tokens"]) == (
        31,
        7,
        16,
    )
    assert usage["calls"] == 1 and usage["cost"] == pytest.approx((15 * 2 + 16 * 2 + 7 * 8) / 1e6)


def test_a_structured_answer_with_the_json_schema_format():
    outcome = both(
        lambda: [reply(200, completion(json.dumps(VERDICT, ensure_ascii=False)))],
        lambda gateway: gateway.chat(MESSAGES, schema=SCHEMA, schema_name="verdict"),
    )
    body = outcome.requests[0].json()
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "verdict"
    assert outcome.result["parsed"] == VERDICT


def test_logprobs_are_asked_for_and_read_the_same_way():
    top = [(" Yes", math.log(0.6)), ("No", math.log(0.3)), ("Yes", -3.5)]
    outcome = both(
        lambda: [reply(200, completion(" Yes", logprobs=top))],
        lambda gateway: gateway.chat(MESSAGES, max_tokens=1, top_logprobs=3, use_cache=False),
    )
    body = outcome.requests[0].json()
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 3, 1)
    assert outcome.result["top_logprobs"] == top


def test_a_chunked_answer():
    outcome = both(lambda: [reply(200, completion("In pieces. " * 20), chunked=True)])
    assert outcome.result["content"] == "In pieces. " * 20


def test_an_answer_without_usage_still_counts_as_a_call():
    body = completion("No usage.")
    del body["usage"]
    outcome = both(lambda: [reply(200, body)])
    assert outcome.result["usage"]["calls"] == 1 and outcome.result["usage"]["prompt_tokens"] == 0


@pytest.mark.parametrize("path", ["/proxy/openai/v1/", "/v1//", "/deploy%20x/v1"])
def test_the_path_under_any_base_url_is_the_sdks(path: str):
    async def go() -> tuple[list[Seen], list[Seen]]:
        seen = {}
        for transport in ("sdk", "direct"):
            async with Scripted([reply(200, completion("ok"))]) as server:
                config = EndpointConfig(
                    name="s", base_url=server.url + path, model="m", api_key=KEY, network=LOOPBACK
                )
                async with Gateway(config, transport=transport) as gateway:  # type: ignore[arg-type]
                    await gateway.chat(MESSAGES, use_cache=False)
                seen[transport] = server.requests
        return seen["sdk"], seen["direct"]

    sdk, direct = asyncio.run(go())
    assert [r.path for r in direct] == [r.path for r in sdk]
    assert direct[0].headers["host"] == sdk[0].headers["host"]


def test_keep_alive_reuses_one_connection():
    async def five(gateway: Gateway) -> Any:
        results = [await gateway.chat(user(f"call {i}"), use_cache=False) for i in range(5)]
        return results[-1]

    outcome = both(lambda: [reply(200, completion(f"answer {i}")) for i in range(5)], five)
    assert outcome.connections == 1
    assert [r.connection for r in outcome.requests] == [1] * 5
    assert outcome.result["content"] == "answer 4"


def test_a_server_closing_an_idle_connection_gets_a_new_one():
    async def two(gateway: Gateway) -> Any:
        await gateway.chat(user("first"), use_cache=False)
        await asyncio.sleep(0.05)  # the server closes the idle connection meanwhile
        return await gateway.chat(user("second"), use_cache=False)

    outcome = both(
        lambda: [reply(200, completion("one"), close_after=True), reply(200, completion("two"))],
        two,
    )
    assert outcome.connections == 2 and outcome.result["attempts"] == 1
    assert outcome.result["content"] == "two" and outcome.delays == []


def test_a_408_sent_on_an_idle_connection_is_not_taken_for_the_next_answer():
    async def then_408(writer: asyncio.StreamWriter) -> bool:
        await reply(200, completion("one"))(writer)
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)  # ... and closes only a while later
        return False

    async def two(gateway: Gateway) -> Any:
        await gateway.chat(user("first"), use_cache=False)
        await asyncio.sleep(0.1)
        return await gateway.chat(user("second"), use_cache=False)

    outcome = both(lambda: [then_408, reply(200, completion("two"))], two)
    assert outcome.result["content"] == "two" and outcome.result["attempts"] == 1
    assert outcome.connections == 2


def test_a_connection_close_header_is_honoured():
    async def two(gateway: Gateway) -> Any:
        await gateway.chat(user("first"), use_cache=False)
        return await gateway.chat(user("second"), use_cache=False)

    outcome = both(
        lambda: [reply(200, completion("one"), {"Connection": "close"}, close_after=True)],
        two,
    )
    assert outcome.connections == 2


# --- failures and retries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers,expected",
    [({"Retry-After": "3"}, 3.0), ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5)],
)
def test_429_waits_as_long_as_the_server_says(headers: dict[str, str], expected: float):
    outcome = both(
        lambda: [
            reply(429, {"error": {"message": "slow down", "type": "rate_limit"}}, headers),
            reply(200, completion("after the pause")),
        ]
    )
    assert outcome.result["content"] == "after the pause" and outcome.result["attempts"] == 2
    (delay,) = outcome.delays
    assert expected <= delay <= expected * 1.1 + 0.01


def test_429_for_ever_gives_up_with_the_same_error():
    outcome = both(
        lambda: [reply(429, {"error": {"message": "no"}}, {"Retry-After": "1"})] * 3,
        max_retries=2,
    )
    assert error_of(outcome) == (
        "rate_limited",
        "rate limited by the server (HTTP 429) (gave up after 2 retries)",
        429,
        3,
    )
    assert len(outcome.delays) == 2


def test_a_retry_after_too_long_is_not_waited_for():
    outcome = both(lambda: [reply(429, b"", {"Retry-After": "600"})])
    kind, message, status, attempts = error_of(outcome)
    assert (kind, status, attempts) == ("rate_limited", 429, 1)
    assert message.endswith("(the server asked to wait 600 s)") and outcome.delays == []


def test_500_then_success():
    outcome = both(
        lambda: [
            reply(500, b"<h1>oops</h1>", content_type="text/html"),
            reply(200, completion("ok")),
        ]
    )
    assert outcome.result["attempts"] == 2 and len(outcome.delays) == 1


def test_a_rejected_response_format_steps_down():
    rejection = {"error": {"message": "response_format json_schema is not supported", "code": 400}}
    outcome = both(
        lambda: [reply(400, rejection), reply(200, completion(json.dumps(VERDICT)))],
        lambda gateway: gateway.chat(MESSAGES, schema=SCHEMA, use_cache=False),
    )
    first, second = (r.json() for r in outcome.requests)
    assert first["response_format"]["type"] == "json_schema"
    assert second["response_format"] == {"type": "json_object"}
    assert outcome.format_mode == "json_object" and outcome.delays == []
    assert outcome.result["parsed"] == VERDICT and outcome.result["attempts"] == 2


def test_a_malformed_answer_gets_a_repair_round_trip():
    outcome = both(
        lambda: [reply(200, completion("not json")), reply(200, completion(json.dumps(VERDICT)))],
        lambda gateway: gateway.chat(MESSAGES, schema=SCHEMA, use_cache=False),
    )
    assert outcome.result["parsed"] == VERDICT and outcome.result["usage"]["calls"] == 2


@pytest.mark.parametrize(
    "status,expected",
    [
        (401, "request rejected (HTTP 401: check the API key)"),
        (403, "request rejected (HTTP 403: the key may not use this)"),
        (404, "request rejected (HTTP 404: check the base URL and the model)"),
        (422, "request rejected (HTTP 422: the server refused the request)"),
        (302, "the server answered with a redirect (HTTP 302); redirects are not followed"),
    ],
)
def test_client_errors_are_not_retried(status: int, expected: str, caplog):
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    with caplog.at_level("DEBUG", logger="scoring.engine"):
        outcome = both(lambda: [reply(status, echo, {"Location": "http://127.0.0.1:1/"})])
    assert error_of(outcome) == ("client_error", expected, status, 1)
    assert KEY not in caplog.text
    assert caplog.text.count("Incorrect API key provided: [redacted]") == 2  # once per transport


@pytest.mark.parametrize(
    "body,content_type,expected",
    [
        (b"{not json", "application/json", "unreadable response (JSONDecodeError)"),
        (b"<html>proxy</html>", "text/html", "the response is not a chat completion"),
        (b'{"choices": []}', "application/json", "the response is not a chat completion"),
        (b"null", "application/json", "the response is not a chat completion"),
        (
            b"\xff\xfe{",
            "application/json; charset=utf-8",
            "unreadable response (UnicodeDecodeError)",
        ),
    ],
)
def test_a_200_that_is_no_chat_completion(body: bytes, content_type: str, expected: str):
    outcome = both(lambda: [reply(200, body, content_type=content_type)], max_retries=0)
    assert error_of(outcome) == ("malformed", expected, None, 1)


def test_a_dropped_connection():
    outcome = both(lambda: [drop], max_retries=0)
    assert error_of(outcome) == (
        "connection",
        "could not talk to the server (RemoteProtocolError)",
        None,
        1,
    )


def test_a_dropped_connection_then_success():
    outcome = both(lambda: [drop, reply(200, completion("ok"))])
    assert outcome.result["attempts"] == 2 and len(outcome.delays) == 1


def test_a_reset_connection():
    outcome = both(lambda: [reset], max_retries=0)
    kind, message, _, _ = error_of(outcome)
    assert kind == "connection" and message.startswith("could not talk to the server (")


def test_an_answer_cut_off_mid_body():
    async def cut(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b'Content-Length: 500\r\n\r\n{"choices": [')
        await writer.drain()
        return False

    outcome = both(lambda: [cut], max_retries=0)
    assert error_of(outcome) == (
        "connection",
        "could not talk to the server (RemoteProtocolError)",
        None,
        1,
    )


def test_garbage_instead_of_http():
    async def garbage(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        return False

    outcome = both(lambda: [garbage], max_retries=0)
    assert error_of(outcome) == (
        "connection",
        "could not talk to the server (RemoteProtocolError)",
        None,
        1,
    )


def test_a_refused_connection():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = both(lambda: [], base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    assert error_of(outcome) == (
        "connection",
        "could not talk to the server (ConnectError)",
        None,
        1,
    )
    assert outcome.requests == []


def test_a_timeout():
    outcome = both(lambda: [hang], timeout=0.3, max_retries=0)
    assert error_of(outcome) == ("timeout", "no answer within 0.3 s", None, 1)


def test_a_blocked_address():
    outcome = both(lambda: [], network=NetworkPolicy())
    assert error_of(outcome) == ("blocked", BLOCKED_MESSAGE, None, 1)
    assert outcome.connections == 0 and outcome.delays == []


def test_an_allowlist_for_another_port_blocks():
    outcome = both(lambda: [], network=NetworkPolicy.parse(["127.0.0.1:1"]))
    assert error_of(outcome) == ("blocked", BLOCKED_MESSAGE, None, 1)
    assert outcome.connections == 0


def test_a_name_resolving_to_an_internal_address_is_blocked(monkeypatch):
    """The direct client resolves through netguard like the SDK's transport does."""
    import ipaddress

    from scoring.engine import netguard

    async def resolve(host: str, port: int) -> list[Any]:
        assert host == "judge.example.test"
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "_resolve", resolve)

    async def go() -> dict[str, Any]:
        outcomes = {}
        async with Scripted([]) as server:
            for transport, network in [
                ("sdk", NetworkPolicy()),
                ("direct", NetworkPolicy()),
                ("sdk", NetworkPolicy.parse(["judge.example.test"])),
                ("direct", NetworkPolicy.parse(["judge.example.test"])),
            ]:
                config = EndpointConfig(
                    name="s",
                    base_url=f"http://judge.example.test:{server.port}/v1",
                    model="m",
                    network=network,
                )
                async with Gateway(config, transport=transport) as gateway:  # type: ignore[arg-type]
                    try:
                        result: Any = (await gateway.chat(MESSAGES, use_cache=False)).content
                    except GatewayError as exc:
                        result = exc.kind
                outcomes[f"{transport} {network}"] = result
            assert [r.headers["host"] for r in server.requests] == ["judge.example.test:PORT"] * 2
        return outcomes

    assert asyncio.run(go()) == {
        "sdk none": "blocked",
        "direct none": "blocked",
        "sdk judge.example.test": "ok",
        "direct judge.example.test": "ok",
    }


# --- against the fake judge server ------------------------------------------------------------


def test_the_fake_judge_answers_both_the_same(fake_llm):  # type: ignore[no-untyped-def]
    fake_llm.configure(
        logprob_rules=[{"pattern": "dose", "top_logprobs": [{"token": "Yes", "logprob": -0.1}]}]
    )

    async def calls(transport: str) -> list[Any]:
        config = EndpointConfig(
            name="fake",
            base_url=f"{fake_llm.url}/v1",
            model="fake-judge",
            api_key=KEY,
            network=LOOPBACK,
            price_input_per_m=1.0,
        )
        async with Gateway(config, transport=transport) as gateway:  # type: ignore[arg-type]
            structured = await gateway.chat(MESSAGES, schema=SCHEMA, use_cache=False)
            tokens = await gateway.chat(MESSAGES, max_tokens=1, top_logprobs=5, use_cache=False)
        return [summary(structured), summary(tokens)]

    fake_llm.reset()
    sdk = asyncio.run(calls("sdk"))
    sdk_sent = fake_llm.recent_requests()
    fake_llm.reset()
    direct = asyncio.run(calls("direct"))
    assert fake_llm.recent_requests() == sdk_sent
    assert direct == sdk
    assert direct[1]["top_logprobs"] == [("Yes", -0.1)]


# --- the direct client's own ----------------------------------------------------------------------


def test_a_stale_kept_alive_connection_is_replaced_once():
    """A reused connection that closes before any byte of the answer is replaced at once,
    without a retry of the gateway's (the SDK's pool checks the socket before reusing it); a
    fresh connection that does the same is a failure."""

    async def go(script: list[Action]) -> Outcome:
        async def three(gateway: Gateway) -> Any:
            await gateway.chat(user("first"), use_cache=False)
            return await gateway.chat(user("second"), use_cache=False)

        return await _one("direct", lambda: script, three, None, {"max_retries": 0})

    replaced = asyncio.run(go([reply(200, completion("one")), drop, reply(200, completion("two"))]))
    assert replaced.result["content"] == "two" and replaced.result["attempts"] == 1
    assert [r.connection for r in replaced.requests] == [1, 1, 2] and replaced.delays == []

    failed = asyncio.run(go([reply(200, completion("one")), drop, drop]))
    assert failed.result["error"] == (
        "connection",
        "could not talk to the server (RemoteProtocolError)",
        None,
        1,
    )
    assert [r.connection for r in failed.requests] == [1, 1, 2]


def test_a_key_that_cannot_go_into_a_header_stays_with_the_sdk():
    for key in ("sk-abc\r\nX-Injected: 1", "sk-ünïcode", " sk-padded "):
        config = EndpointConfig(name="s", base_url="http://127.0.0.1:9/v1", model="m", api_key=key)
        gateway = Gateway(config, transport="direct")
        assert gateway._direct is None
        asyncio.run(gateway.aclose())
    config = EndpointConfig(name="s", base_url="http://127.0.0.1:9/v1", model="m", api_key="sk-ok")
    assert Gateway(config)._direct is not None  # the default


def test_an_unknown_transport_is_a_config_error():
    config = EndpointConfig(name="s", base_url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(GatewayError) as caught:
        Gateway(config, transport="curl")  # type: ignore[arg-type]
    assert caught.value.kind == "config"


def test_compressed_and_interim_answers_are_read():
    body = json.dumps(completion("squeezed")).encode()

    async def gzipped(writer: asyncio.StreamWriter) -> bool:
        data = gzip.compress(body)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        return True

    outcome = both(lambda: [gzipped])
    assert outcome.result["content"] == "squeezed"


def test_an_answer_running_to_the_end_of_the_connection():
    body = json.dumps(completion("until EOF")).encode()

    async def until_eof(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
        await writer.drain()
        return False

    async def two(gateway: Gateway) -> Any:
        await gateway.chat(user("first"), use_cache=False)
        return await gateway.chat(user("second"), use_cache=False)

    outcome = both(lambda: [until_eof, until_eof], two)
    assert outcome.result["content"] == "until EOF" and outcome.connections == 2


def test_a_new_event_loop_does_not_reuse_connections_of_the_last():
    async def call(gateway: Gateway) -> str:
        return (await gateway.chat(MESSAGES, use_cache=False)).content

    with FakeLLMServer(FakeConfig(latency=0.0)) as server:
        config = EndpointConfig(name="s", base_url=f"{server.url}/v1", model="m", network=LOOPBACK)
        gateway = Gateway(config)
        first = asyncio.run(call(gateway))
        second = asyncio.run(call(gateway))  # the first loop is closed by now
        asyncio.run(gateway.aclose())
    assert first and second


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_header_safe():
    assert direct_http.header_safe("sk-proj-AbC_123")
    assert not direct_http.header_safe("sk\nx")
