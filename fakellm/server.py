"""A fake OpenAI-compatible chat-completions server on plain asyncio.

Why it exists: the scoring code talks to LLMs over HTTP through the official ``openai`` SDK.
Tests, benchmarks and offline development need a server that speaks the same wire format,
answers deterministically, can be scripted by prompt content, injects faults (429, 500,
hangs, malformed JSON) reproducibly, and records what the client did (arrival times, peak
concurrency, token usage) so rate limiting, retries and concurrency caps can be asserted.

Why a hand-written HTTP/1.1 server: it must stay on the standard library (no aiohttp, no
Django), push thousands of requests/s through 64+ keep-alive connections on a small machine,
and never spend a thread per request. ``asyncio.start_server`` with a tiny parser does that;
only what OpenAI clients send is supported (``Content-Length`` bodies, keep-alive, pipelining).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import threading
from typing import Any

from fakellm.chat import _ChatCompletions, _Stats
from fakellm.config import FakeConfig, is_loopback_host
from fakellm.protocol import (
    _MAX_BODY,
    _READ_LIMIT,
    _BadRequest,
    _encode_response,
    _error_body,
    _parse_head,
    _Result,
)
from fakellm.schema import _seeded

__all__ = ["FakeLLMServer"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# The server


class FakeLLMServer(_ChatCompletions):
    """The fake server: run it in a background thread (tests) or in the current loop (CLI).

    ``stats()``, ``reset()`` and ``configure()`` may be called from any thread; the same
    operations are exposed over HTTP as ``GET /_stats``, ``POST /_reset``, ``POST /_config``.
    ``configure()`` and ``reset()`` restart the fault draws from ``seed``, so a test that
    configures, runs N sequential requests, resets and runs them again sees the same faults.
    """

    def __init__(
        self,
        config: FakeConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(f"refusing to serve on non-loopback host {host!r}")
        self._config = config if config is not None else FakeConfig()
        self._config.validate()
        self.host = host
        self.port = port
        self.url = ""
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._in_flight = 0
        self._seen_prefixes: set[str] = set()
        self._fault_rng = _seeded(self._config.seed)
        self._jitter_rng = _seeded(f"jitter-{self._config.seed}")
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    # ---- thread-safe control --------------------------------------------------------

    @property
    def config(self) -> FakeConfig:
        """The current configuration (replace it with :meth:`configure`, don't mutate it)."""
        return self._config

    def configure(self, **changes: Any) -> None:
        """Change some config fields (same names as :class:`FakeConfig`) and reseed faults."""
        with self._lock:
            self._config = self._config.with_changes(**changes)
            self._reseed()

    def reset(self) -> None:
        """Zero the stats, forget the prefix cache and restart the fault draws from the seed."""
        with self._lock:
            self._stats = _Stats()
            self._stats.max_in_flight = self._in_flight
            self._seen_prefixes.clear()
            self._reseed()

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters (a fresh dict, safe to keep)."""
        with self._lock:
            s = self._stats
            return {
                "requests": s.requests,
                "by_outcome": dict(s.by_outcome),
                "arrivals": list(s.arrivals),
                "usage": dict(s.usage),
                "max_in_flight": s.max_in_flight,
                "in_flight": self._in_flight,
                "by_model": dict(s.by_model),
            }

    def recent_requests(self) -> list[dict[str, Any]]:
        """The bodies of the last well-formed chat requests (up to ``chat.RECENT``), oldest
        first, as the server read them (what a client really sent)."""
        with self._lock:
            return [json.loads(json.dumps(body)) for body in self._stats.recent]

    def _reseed(self) -> None:
        self._fault_rng = _seeded(self._config.seed)
        self._jitter_rng = _seeded(f"jitter-{self._config.seed}")

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self) -> str:
        """Bind and start accepting in the running loop; returns the base URL (no ``/v1``)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, limit=_READ_LIMIT, backlog=1024
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self.url

    async def serve(self) -> None:
        """Serve in the current loop until cancelled (the CLI's entry point)."""
        if self._server is None:
            await self.start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop listening and drop every connection, including hung ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def start_in_thread(self) -> str:
        """Run the server on its own event loop in a daemon thread; returns once listening.

        Why a thread: synchronous tests (and Django code under test) can then talk to it
        without owning an event loop.
        """
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._thread_main(ready))
            except BaseException as exc:  # reported to the caller of start_in_thread
                failure.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="fakellm", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("fakellm did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self.url

    async def _thread_main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        await self.start()
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self.aclose()

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread` (idempotent)."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be gone
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeLLMServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeLLMServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- HTTP -----------------------------------------------------------------------

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request
        except asyncio.CancelledError:
            # Shutdown cancels open connections; ending quietly keeps Python 3.11's stream
            # protocol from logging the cancellation as an unhandled error.
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests on one connection in order until it closes (keep-alive)."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # closed between requests: the normal end of a keep-alive connection
            except asyncio.LimitOverrunError:
                body = _error_body("request head too large", "invalid_request_error")
                writer.write(_encode_response(431, body, None, False, False))
                return
            try:
                method, target, http10, length, keep_alive, chunked, expect = _parse_head(head)
            except _BadRequest as exc:
                body = _error_body(str(exc), "invalid_request_error")
                writer.write(_encode_response(400, body, None, False, False))
                return
            if chunked or length > _MAX_BODY:
                status = 501 if chunked else 413
                message = "chunked request bodies are not supported" if chunked else "too large"
                body = _error_body(message, "invalid_request_error")
                writer.write(_encode_response(status, body, None, False, http10))
                return
            if expect and length:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await reader.readexactly(length) if length else b""
            try:
                result = await self._route(method, target, body, reader)
            except Exception:  # a fakellm bug: say so instead of dropping the connection
                log.exception("fakellm failed on %s %s", method, target)
                message = "fakellm internal failure (not a simulated fault)"
                result = (500, _error_body(message, "fakellm_bug"), None)
            if result is None:
                return  # a simulated hang: drop the connection without an answer
            status, payload, headers = result
            writer.write(_encode_response(status, payload, headers, keep_alive, http10))
            await writer.drain()
            if not keep_alive:
                return

    async def _route(
        self, method: bytes, target: bytes, body: bytes, reader: asyncio.StreamReader
    ) -> _Result | None:
        path = target.split(b"?", 1)[0].decode("latin-1").rstrip("/")
        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != b"POST":
                return self._method_not_allowed()
            return await self._chat(body, reader)
        if method == b"GET" and path in ("/v1/models", "/models"):
            data = [self._model_entry(m) for m in self._config.models]
            return 200, json.dumps({"object": "list", "data": data}).encode(), None
        if method == b"GET" and path.startswith(("/v1/models/", "/models/")):
            name = path.split("/models/", 1)[1]
            if name in self._config.models:
                return 200, json.dumps(self._model_entry(name)).encode(), None
            return 404, _error_body(f"model {name!r} not found", "invalid_request_error"), None
        if path == "/_stats":
            if method != b"GET":
                return self._method_not_allowed()
            return 200, json.dumps(self.stats()).encode(), None
        if path == "/_reset":
            if method != b"POST":
                return self._method_not_allowed()
            self.reset()
            return 200, b'{"ok": true}', None
        if path == "/_config":
            if method == b"POST":
                try:
                    changes = json.loads(body or b"{}")
                    if not isinstance(changes, dict):
                        raise ValueError("expected a JSON object")
                    self.configure(**changes)
                except (ValueError, TypeError, re.error) as exc:
                    return 400, _error_body(str(exc), "invalid_request_error"), None
            elif method != b"GET":
                return self._method_not_allowed()
            return 200, json.dumps({"config": self._config.to_dict()}).encode(), None
        if method == b"GET" and path in ("", "/_health"):
            return 200, b'{"status": "ok"}', None
        return 404, _error_body(f"no route for {path or '/'}", "invalid_request_error"), None

    @staticmethod
    def _method_not_allowed() -> _Result:
        return 405, _error_body("method not allowed", "invalid_request_error"), None

    @staticmethod
    def _model_entry(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "owned_by": "fakellm", "created": 0}
