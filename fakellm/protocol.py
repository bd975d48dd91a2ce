"""The HTTP/1.1 wire format of the fake server: request heads in, responses out.

Only what OpenAI clients send is understood (``Content-Length`` bodies, keep-alive,
``Expect: 100-continue``); errors are encoded the way the OpenAI API encodes them.
"""

from __future__ import annotations

import json

_READ_LIMIT = 1 << 20  # largest request head we accept (a body is read separately)
_MAX_BODY = 64 << 20  # prompts are big, but a 64 MiB request is a client bug

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()


def _encode_response(
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None,
    keep_alive: bool,
    http10: bool,
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if headers:
        head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    if not keep_alive:
        head += "Connection: close\r\n"
    elif http10:
        head += "Connection: keep-alive\r\n"
    return (head + "\r\n").encode("latin-1") + body


class _BadRequest(Exception):
    """The request head cannot be parsed; answer 400 and close."""


def _parse_head(head: bytes) -> tuple[bytes, bytes, bool, int, bool, bool, bool]:
    """(method, target, http10, content_length, keep_alive, chunked, expect_continue)."""
    lines = head.lstrip(b"\r\n")[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _BadRequest("malformed request line")
    method, target, version = parts
    content_length = 0
    connection = b""
    chunked = False
    expect_continue = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise _BadRequest("malformed header line")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                content_length = int(value)
            except ValueError:
                raise _BadRequest("invalid Content-Length") from None
            if content_length < 0:
                raise _BadRequest("invalid Content-Length")
        elif name == b"connection":
            connection = value.strip().lower()
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"expect":
            expect_continue = value.strip().lower() == b"100-continue"
    http10 = version == b"HTTP/1.0"
    keep_alive = b"keep-alive" in connection if http10 else b"close" not in connection
    return method, target, http10, content_length, keep_alive, chunked, expect_continue


_Result = tuple[int, bytes, list[tuple[str, str]] | None]
