"""Outbound requests that cannot reach the inside.

A project owner chooses the base URL of an endpoint without a provider, so every request
the studio sends to an LLM server could otherwise be aimed at the studio's own network:
Redis and PostgreSQL on loopback, a cloud metadata service, a LAN admin page. This module
decides, on every new connection (not when the endpoint is saved: DNS answers change), where
a request may go:

* the host is resolved here and every address it resolves to is checked; the connection is
  made to an address that passed the check (never to the name again, so a second DNS answer
  cannot swap in another address), TLS still verifying the certificate for the name;
* loopback, private, shared (CGNAT), link-local, multicast, reserved and unspecified
  addresses, IPv4-mapped or NAT64/6to4-embedded ones included, are refused unless the site's
  allowlist (`NetworkPolicy`) names them; cloud metadata addresses only when an entry names
  that very address;
* a refusal is one fixed message, whatever the port and whether anything listens there.

Plain Python (no Django): the policy is plain data, built by the caller from its settings.
Redirects are the client's business (`scoring.engine.gateway` never follows them).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

__all__ = [
    "BLOCKED_MESSAGE",
    "AddressBlocked",
    "AllowEntry",
    "NetworkPolicy",
    "guarded_transport",
    "is_public",
    "literal_address",
    "url_problems",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Fixed on purpose: the same words for every refused address and port, so that a refusal
# tells nothing about what listens behind it.
BLOCKED_MESSAGE = (
    "the endpoint's address is not allowed (internal addresses need the site's allowlist)"
)

# Instance metadata services (AWS, GCP, Azure, DigitalOcean, OpenStack: 169.254.169.254;
# AWS ECS task metadata; Alibaba; Oracle; AWS over IPv6). Most are link-local already; these
# are refused even under an allowlisted range unless an entry names the address itself.
METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.123",
        "100.100.100.200",
        "192.0.0.192",
        "fd00:ec2::254",
    )
)
# NAT64's well-known prefix embeds, in its last 32 bits, the IPv4 address the packets reach.
# The local-use prefix 64:ff9b:1::/48 may embed it at other positions: never public.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")


class AddressBlocked(httpcore2.ConnectError):
    """A connection the policy refused. Its message is always `BLOCKED_MESSAGE`. A connect
    error to httpx, so that clients treat it as one (and chain it, see `blocked_in_chain`)."""

    def __init__(self) -> None:
        super().__init__(BLOCKED_MESSAGE)


def _unmapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address behind an IPv4-mapped IPv6 one (``::ffff:127.0.0.1``), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _reaches(ip: IPAddress) -> IPAddress:
    """Where packets to ``ip`` finally go: the IPv4 address a mapped or NAT64 address
    embeds, else ``ip``."""
    ip = _unmapped(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routed unicast address that is no metadata service."""
    ip = _unmapped(ip)
    if ip in METADATA:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64:
            return is_public(_reaches(ip))
        if ip in NAT64_LOCAL:
            return False
        if ip.sixtofour is not None and not is_public(ip.sixtofour):
            return False
        if ip.teredo is not None or ip.is_site_local:
            return False
    elif ip in IETF_PROTOCOL_ASSIGNMENTS:
        return False
    return (
        ip.is_global
        and not ip.is_private
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_unspecified
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for, in any spelling the system's
    resolver accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``[::ffff:7f00:1]``…), or
    None for a name. Resolves nothing: a numeric host only."""
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    return _unmapped(ipaddress.ip_address(str(infos[0][4][0]).split("%")[0]))


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist entry: a network (an address is a network of one) or a host name, and
    optionally the one port it allows."""

    network: IPNetwork | None = None
    hostname: str | None = None
    port: int | None = None

    def matches(self, hostname: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if _reaches(ip) in METADATA:  # only an entry naming the address itself, never a name
            return (
                self.network is not None and self.network.num_addresses == 1 and ip in self.network
            )
        if self.hostname is not None:
            return hostname == self.hostname
        assert self.network is not None
        return ip.version == self.network.version and ip in self.network

    def __str__(self) -> str:
        network = self.network
        target = self.hostname or (
            str(network.network_address) if network and network.num_addresses == 1 else str(network)
        )
        if network is not None and network.version == 6 and self.port is not None:
            target = f"[{target}]"
        return target if self.port is None else f"{target}:{self.port}"


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    return int(text)


def _normal_name(name: str) -> str:
    return name.lower().rstrip(".")


def parse_entry(entry: str) -> AllowEntry:
    """``10.0.0.0/8``, ``127.0.0.1:8001``, ``[fd00::/8]:8000``, ``::1``, ``vllm.lan:8000``.

    Raises ValueError naming the entry when it is none of these."""
    text = entry.strip()
    if not text:
        raise ValueError("an empty entry")
    port: int | None = None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r}: write an IPv6 entry as [address] or [address]:port")
        if rest:
            port = _port(rest[1:], entry)
        text = inside
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        port = _port(port_text, entry)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        network = None
    if network is not None:
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.ip_network(mapped)
        return AllowEntry(network=network, port=port)
    literal = literal_address(text)
    if literal is not None:  # 2130706433 and friends: the address they spell
        return AllowEntry(network=ipaddress.ip_network(literal), port=port)
    name = _normal_name(text)
    labels = name.split(".")
    if (
        not name
        or "/" in name
        or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        )
    ):
        raise ValueError(
            f"{entry!r} is not an address, a network (a.b.c.d/n), a host name or one of "
            "them with :port"
        )
    return AllowEntry(hostname=name, port=port)


@dataclass(frozen=True)
class NetworkPolicy:
    """Where requests may go: anywhere public, and the internal places ``allowed`` names."""

    allowed: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> NetworkPolicy:
        """From the site's allowlist; a bad entry raises ValueError naming it."""
        return cls(tuple(parse_entry(e) for e in entries if e.strip()))

    def permits(self, hostname: str, ip: IPAddress, port: int) -> bool:
        ip = _unmapped(ip)
        if is_public(ip):
            return True
        name = _normal_name(hostname)
        return any(entry.matches(name, ip, port) for entry in self.allowed)

    def __str__(self) -> str:
        return ", ".join(str(e) for e in self.allowed) or "none"


def url_problems(url: str) -> list[str]:
    """What makes ``url`` unusable as a base URL, in words for the person who typed it.

    Only http(s), a host, no user name or password, no query and no fragment (a ``?`` at
    the end of a base URL would turn the API path the client appends into a query string
    and so reach any path of the server), no spaces or control characters."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return ["the base URL contains spaces or control characters"]
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx2.URL(url)  # what the client will parse (it refuses 0177.0.0.1, for one)
    except (ValueError, httpx2.InvalidURL):
        return ["the base URL is not a valid URL"]
    problems = []
    if parts.scheme not in ("http", "https"):
        problems.append("the base URL must start with http:// or https://")
    if not parts.hostname:
        problems.append("the base URL has no host")
    if "@" in parts.netloc:
        problems.append("the base URL must not hold a user name or password")
    if parts.query or "?" in url:
        problems.append("the base URL must not have a query (?…)")
    if parts.fragment or "#" in url:
        problems.append("the base URL must not have a fragment (#…)")
    if port == 0:
        problems.append("the base URL's port must be from 1 to 65535")
    return problems


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (replaceable in tests)."""
    try:
        return [ipaddress.ip_address(host)]  # an address already: no resolver thread
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend behind the policy: resolve, check, connect to the checked
    address. TLS (``start_tls``, done by httpcore on the stream returned here) still
    verifies the certificate against the URL's host name."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self.policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(_resolve(host, port), timeout)
        except (OSError, UnicodeError, ValueError):
            raise httpcore2.ConnectError(f"could not resolve the host {host!r}") from None
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host!r} took too long") from None
        allowed: list[str] = []
        for ip in addresses:
            ip = _unmapped(ip)
            if self.policy.permits(host, ip, port) and str(ip) not in allowed:
                allowed.append(str(ip))
        if not allowed:
            raise AddressBlocked()
        last: Exception | None = None
        for address in allowed:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc  # the next allowed address, if any
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore2.AsyncNetworkStream:
        raise AddressBlocked()

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx's transport with its connection pool on the guarded backend; no proxies (a
    proxy would make the connection the policy checks the proxy's, not the server's)."""

    def __init__(self, policy: NetworkPolicy, limits: httpx2.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        ssl_context = httpx2.create_ssl_context(trust_env=True)
        # httpx builds its pool without a way to pass a network backend: build the same
        # pool (the public httpcore API) with ours.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_GuardedBackend(policy),
        )


def guarded_transport(policy: NetworkPolicy, limits: httpx2.Limits) -> httpx2.AsyncBaseTransport:
    """An httpx transport whose every connection goes through ``policy``."""
    return _GuardedTransport(policy, limits)


def blocked_in_chain(exc: BaseException | None) -> bool:
    """Whether ``exc`` was caused, somewhere down its chain, by a refused address."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AddressBlocked):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
