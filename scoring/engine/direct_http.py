"""A direct HTTP/1.1 client for the request the gateway sends thousands of times a run: POST
a JSON body to the endpoint, read its answer.

The OpenAI SDK's client (httpx on httpcore) is the reference and stays in use for everything
else; its connection pool checks every open connection for every request, which at 128
calls in flight costs more CPU than the judging itself. This client does only what that one
request needs, under the same outbound rules:

* the base URL is read by httpx's own parser, so the host (IDNA-encoded), the port, the
  ``Host`` header and the request path are the ones the SDK's client would send;
* every new connection goes through the site's ``NetworkPolicy`` (``netguard``), exactly as
  the SDK's guarded transport does: the host is resolved by ``netguard._resolve``, every
  address checked, and the connection made to an address that passed (never to the name
  again); TLS verifies the certificate for the host name with the SSL context httpx builds;
* no proxies, no redirects followed (a 3xx is an answer like any other), no cookies;
* keep-alive connections reused last-in first-out (at most ``MAX_IDLE`` kept), dropped
  after ``KEEPALIVE_EXPIRY`` seconds idle or when the server says ``Connection: close``; a
  reused connection the server had closed meanwhile is replaced once, before any byte of
  the answer was read (httpcore checks the same before reusing one);
* ``timeout`` bounds one request end to end (connecting, sending, reading).

Failures are raised as ``TransportError`` with the name of the httpx error that the SDK's
client raises for the same event (``ConnectError``, ``RemoteProtocolError``...), so the
gateway words them the same way whichever client sent the request. Nothing the caller passed
(the API key above all) is ever part of an error or a log record.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import zlib
from dataclasses import dataclass

import httpx2

from scoring.engine import netguard

__all__ = ["DirectClient", "HttpAnswer", "TransportError", "header_safe"]

KEEPALIVE_EXPIRY = 5.0  # seconds, as httpx's default
MAX_IDLE = 100  # idle connections kept, as the SDK transport's max_keepalive_connections
MAX_HEADER_LINES = 200
MAX_BODY = 64 * 2**20  # an answer larger than this is not a chat completion


class TransportError(Exception):
    """The request got no HTTP answer. ``name`` is the httpx error for the same event."""

    def __init__(self, name: str, *, timeout: bool = False, blocked: bool = False) -> None:
        super().__init__(name)
        self.name = name
        self.timeout = timeout
        self.blocked = blocked


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    # Names lower-cased; a repeated header's values joined by ", " (as httpx's ``get``).
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """The body decoded as httpx would: the charset the content type names, else UTF-8,
        undecodable bytes replaced."""
        charset = "utf-8"
        for param in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip("'\"")
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def header_safe(value: str) -> bool:
    """Whether ``value`` can be sent as it is in a header line (printable ASCII: no CR/LF
    that would end the header, nothing httpx would refuse or encode differently)."""
    return value.isascii() and value.isprintable() and value == value.strip()


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its event loop is closed: nothing to close
            self.writer.close()


def _quiet(reader: asyncio.StreamReader) -> bool:
    """Whether an idle connection got nothing since its last answer: no end of stream and no
    bytes (a server closing an idle connection may first send a 408, which must not be read
    as the answer to the next request; httpcore drops a connection readable while idle)."""
    return not reader.at_eof() and not getattr(reader, "_buffer", None)


async def _closed(connection: _Connection) -> None:
    with contextlib.suppress(OSError, RuntimeError):  # reset while closing: closed all the same
        await connection.writer.wait_closed()


class _Stale(Exception):
    """A reused connection turned out closed before any byte of the answer arrived."""


class _Protocol(Exception):
    """The server's bytes are not HTTP/1.1."""


class DirectClient:
    """POSTs of JSON to one server. Used inside one event loop (connections opened in an
    earlier loop are dropped, not reused); ``aclose`` it in that loop."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        policy: netguard.NetworkPolicy,
        timeout: float,
        user_agent: str,
    ) -> None:
        """Raises ValueError for a base URL that is not http(s) or a key or user agent that
        cannot be sent in a header (the caller then uses the SDK's client)."""
        url = httpx2.URL(base_url)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError("not an http(s) URL")
        if not header_safe(api_key) or not header_safe(user_agent):
            raise ValueError("a header value that cannot be sent as it is")
        https = url.scheme == "https"
        self._host = url.raw_host.decode("ascii")  # what httpcore connects to and checks
        self._port = url.port or (443 if https else 80)
        # The SDK joins its base URL (with a trailing slash) and the path the same way.
        prefix = url.raw_path.decode("ascii")
        self._prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._ssl: ssl.SSLContext | None = None
        if https:
            self._ssl = httpx2.create_ssl_context(trust_env=True)
            self._ssl.set_alpn_protocols(["http/1.1"])  # as httpcore offers it without http2
        self._policy = policy
        self._timeout = timeout
        self._headers = (
            f"Host: {url.netloc.decode('ascii')}\r\n"
            "Accept: application/json\r\n"
            "Content-Type: application/json\r\n"
            f"User-Agent: {user_agent}\r\n"
            f"Authorization: Bearer {api_key}\r\n"
        ).encode("ascii")
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post_json(self, path: str, body: bytes) -> HttpAnswer:
        """POST ``body`` (JSON) to ``path`` under the base URL. Raises TransportError."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._drop_idle()
            self._loop = loop
        head = (
            f"POST {self._prefix}{path.lstrip('/')} HTTP/1.1\r\n".encode("ascii")
            + self._headers
            + f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
        )
        try:
            async with asyncio.timeout(self._timeout):
                connection = self._reuse()
                if connection is not None:
                    try:
                        return await self._exchange(connection, head, body, reused=True)
                    except _Stale:
                        pass
                connection = await self._connect()
                return await self._exchange(connection, head, body, reused=False)
        except TimeoutError:
            raise TransportError("ReadTimeout", timeout=True) from None

    async def aclose(self) -> None:
        """Close the idle connections (in the loop that opened them)."""
        idle = self._drop_idle()
        if idle and asyncio.get_running_loop() is self._loop:
            await asyncio.wait([asyncio.ensure_future(_closed(c)) for c in idle], timeout=1.0)

    # --- connections -------------------------------------------------------------------

    def _drop_idle(self) -> list[_Connection]:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        return idle

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < KEEPALIVE_EXPIRY and _quiet(connection.reader):
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        """A new connection to an address of the host that the policy permits, checked as
        ``netguard``'s guarded backend checks the SDK's connections."""
        try:
            addresses = await netguard._resolve(self._host, self._port)
        except (OSError, UnicodeError, ValueError):
            raise TransportError("ConnectError") from None
        allowed: list[str] = []
        for ip in addresses:
            ip = netguard._unmapped(ip)
            if self._policy.permits(self._host, ip, self._port) and str(ip) not in allowed:
                allowed.append(str(ip))
        if not allowed:
            raise TransportError("ConnectError", blocked=True)
        for address in allowed:
            try:
                reader, writer = await asyncio.open_connection(
                    address,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                    limit=2**20,
                )
            except OSError:  # ssl.SSLError included: the next allowed address, if any
                continue
            return _Connection(reader, writer)
        raise TransportError("ConnectError")

    # --- one request and its answer ----------------------------------------------------

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes, *, reused: bool
    ) -> HttpAnswer:
        got_bytes = False
        try:
            try:
                connection.writer.write(head + body)
                await connection.writer.drain()
            except OSError:
                # As httpcore: a server may close early and still answer (a 413, say):
                # read what it sent; a dead connection fails the read just below.
                pass
            while True:
                try:  # the status line and the headers at once (one await, not one a line)
                    answer_head = await connection.reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    got_bytes = got_bytes or bool(exc.partial)
                    raise
                got_bytes = True
                version, status, headers = _parse_head(answer_head)
                if not 100 <= status < 200 or status == 101:
                    break  # 1xx are interim answers (103 Early Hints...): the real one follows
            if status == 101:
                raise _Protocol
            no_body = status in (204, 304)
            content = b"" if no_body else await _read_body(connection.reader, headers)
            content = _decoded(content, headers.get("content-encoding", ""))
        except asyncio.IncompleteReadError:
            # The server closed the connection (before the answer, or in the middle of it).
            connection.close()
            if reused and not got_bytes:
                raise _Stale from None
            raise TransportError("RemoteProtocolError") from None
        except OSError:  # reset, aborted: ConnectionError included
            connection.close()
            if reused and not got_bytes:
                raise _Stale from None
            raise TransportError("ReadError") from None
        except (_Protocol, asyncio.LimitOverrunError, ValueError):
            connection.close()
            raise TransportError("RemoteProtocolError") from None
        except zlib.error:
            connection.close()
            raise TransportError("DecodingError") from None
        except BaseException:  # cancelled or timed out mid-answer: the connection is unusable
            connection.close()
            raise
        if (
            version == "HTTP/1.1"
            and "close" not in headers.get("connection", "").lower()
            and len(self._idle) < MAX_IDLE
        ):
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return HttpAnswer(status, headers, content)


def _parse_head(head: bytes) -> tuple[str, int, dict[str, str]]:
    """The HTTP version, the status and the headers of an answer's head (up to the blank
    line). Header names lower-cased; a repeated header's values joined by ", "."""
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit() or rest[3:4] not in ("", " "):
        raise _Protocol
    if len(lines) > MAX_HEADER_LINES:
        raise _Protocol
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        name = name.lower()
        if not sep or not name or name != name.strip():
            raise _Protocol
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return version, int(code), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            digits = line.split(b";", 1)[0].strip()
            if not digits or not all(c in b"0123456789abcdefABCDEF" for c in digits):
                raise _Protocol
            length = int(digits, 16)
            if length == 0:
                for _ in range(MAX_HEADER_LINES):  # trailers, ignored
                    if await reader.readuntil(b"\r\n") == b"\r\n":
                        return b"".join(parts)
                raise _Protocol
            size += length
            if size > MAX_BODY:
                raise _Protocol
            parts.append(await reader.readexactly(length))
            if await reader.readexactly(2) != b"\r\n":
                raise _Protocol
    if "content-length" in headers:
        values = {v.strip() for v in headers["content-length"].split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise _Protocol  # conflicting lengths: h11 refuses them too
        length = int(values.pop())
        if length > MAX_BODY:
            raise _Protocol
        return await reader.readexactly(length)
    # Neither: the body runs to the end of the connection (which is then not reused).
    headers["connection"] = "close"
    data = bytearray()
    while chunk := await reader.read(MAX_BODY + 1 - len(data)):
        data += chunk
        if len(data) > MAX_BODY:
            raise _Protocol
    return bytes(data)


def _decoded(content: bytes, encoding: str) -> bytes:
    """The body without its content coding: gzip and deflate, as httpx decodes them (this
    client asks for none, so only a server that compresses regardless sends them)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity") or not content:
        return content
    if encoding in ("gzip", "x-gzip"):
        decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    elif encoding == "deflate":
        try:  # zlib-wrapped, or raw deflate as some servers send it (httpx accepts both)
            return _inflate(zlib.decompressobj(zlib.MAX_WBITS), content)
        except zlib.error:
            decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    else:
        return content  # unknown to httpx too: passed on as it is
    return _inflate(decompressor, content)


def _inflate(decompressor: zlib._Decompress, content: bytes) -> bytes:
    data = decompressor.decompress(content, MAX_BODY + 1)
    if len(data) > MAX_BODY or decompressor.unconsumed_tail:
        raise _Protocol
    return data
