"""A loopback HTTP listener that records every connection and every request it gets: the
stand-in for an owner's own server, an internal service, or a redirect's target."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def chat_completion(content: str = '{"ok": true}') -> Reply:
    body = {
        "id": "x",
        "object": "chat.completion",
        "model": "listener",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


def models_list(*names: str) -> Reply:
    body = {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self.listener.lock:
            self.listener.connections += 1
        return conn, address


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        listener = self.server.listener
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        raw = f"{self.requestline}\r\n{self.headers}".encode() + body
        with listener.lock:
            listener.requests.append(raw)
        reply = listener.reply_for(self.path)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


class Listener:
    """``replies`` maps a path suffix (``/models``, ``/chat/completions``) to a Reply; the
    default answers like an OpenAI-compatible server with the model ``listener``."""

    def __init__(self, replies: dict[str, Reply] | None = None) -> None:
        self.replies = replies or {
            "/models": models_list("listener"),
            "/chat/completions": chat_completion(),
        }
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[bytes] = []
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def reply_for(self, path: str) -> Reply:
        for suffix, reply in self.replies.items():
            if path.split("?")[0].endswith(suffix):
                return reply
        return Reply(404, b"no such path")

    def received(self) -> bytes:
        with self.lock:
            return b"".join(self.requests)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
