"""Outbound requests that cannot reach the inside, through the real gateway and SDK, against
listeners on loopback: internal addresses in every spelling (and names that resolve to
them) are refused before a connection is made, with one fixed message whatever the port;
the allowlist opens exactly what it names; redirects are never followed; the connection
goes to the address that was checked; and nothing a server sends is echoed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from scoring.engine import netguard
from scoring.engine.gateway import Gateway
from scoring.engine.gateway_types import EndpointConfig, GatewayError
from scoring.engine.netguard import BLOCKED_MESSAGE, NetworkPolicy, is_public, url_problems
from tests.scoring.listener import Listener, Reply, closed_port

KEY = "sk-canary-netguard-5e1b"


def config(base_url: str, policy: NetworkPolicy | None = None, **changes) -> EndpointConfig:
    return EndpointConfig(
        name="e",
        base_url=base_url,
        model="listener",
        api_key=KEY,
        max_retries=0,
        timeout=5,
        network=policy or NetworkPolicy(),
        **changes,
    )


def outcome(cfg: EndpointConfig, *, models: bool = False) -> GatewayError | object:
    """The call's result, or the GatewayError it ended with."""

    async def run() -> object:
        async with Gateway(cfg) as gateway:
            if models:
                return await gateway.list_models()
            return await gateway.chat([{"role": "user", "content": "hi"}])

    try:
        return asyncio.run(run())
    except GatewayError as exc:
        return exc


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1",
        "169.254.169.254", "169.254.1.1", "0.0.0.0", "224.0.0.1", "239.255.255.250",  # noqa: S104
        "240.0.0.1", "255.255.255.255", "192.0.0.192", "198.18.0.1", "::1", "::",
        "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1",
        "::ffff:10.0.0.1", "64:ff9b::a00:1", "64:ff9b::7f00:1", "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::7f00:1", "fec0::1", "64:ff9b:1:a00:1:0:808:808",
    ],
)  # fmt: skip
def test_internal_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "64:ff9b::808:808"]
)
def test_public_addresses_are(address):
    assert is_public(ipaddress.ip_address(address))


def test_the_allowlist_names_addresses_networks_names_and_ports():
    policy = NetworkPolicy.parse(
        ["127.0.0.1:8001", "10.0.0.0/8", "[fd00::/8]:8000", "vllm.lan:9000", "2130706433:7000"]
    )
    lo, ten, ula = (ipaddress.ip_address(a) for a in ("127.0.0.1", "10.9.8.7", "fd00::5"))
    assert policy.permits("127.0.0.1", lo, 8001) and not policy.permits("127.0.0.1", lo, 6379)
    assert policy.permits("x", lo, 7000)  # the decimal spelling is 127.0.0.1
    assert policy.permits("anything", ten, 5432)  # a whole network, any port
    assert policy.permits("h", ula, 8000) and not policy.permits("h", ula, 8001)
    assert policy.permits("VLLM.lan.", ipaddress.ip_address("192.168.1.2"), 9000)
    assert not policy.permits("other.lan", ipaddress.ip_address("192.168.1.2"), 9000)
    assert policy.permits("h", ipaddress.ip_address("::ffff:127.0.0.1"), 8001)  # mapped
    # A metadata address is only ever reached when an entry names it exactly.
    metadata = ipaddress.ip_address("169.254.169.254")
    assert not NetworkPolicy.parse(["169.254.0.0/16"]).permits("m", metadata, 80)
    assert NetworkPolicy.parse(["169.254.169.254"]).permits("m", metadata, 80)
    # A host name that resolves to a metadata address does not open it.
    assert not NetworkPolicy.parse(["metadata.internal"]).permits("metadata.internal", metadata, 80)
    dns64 = ipaddress.ip_address("64:ff9b::a9fe:a9fe")  # 169.254.169.254 through NAT64
    assert not NetworkPolicy.parse(["vllm.lan"]).permits("vllm.lan", dns64, 80)
    for bad in ("not a host", "10.0.0.0/8:0", "1.2.3.4:99999", "[::1", "[::1]x", "a/b"):
        with pytest.raises(ValueError, match="port|not an address|IPv6"):
            NetworkPolicy.parse([bad])


def test_base_urls_with_a_query_credentials_or_another_scheme_are_refused_before_any_request():
    with Listener() as listener:
        for url, problem in [
            (f"{listener.url}/admin?", "query"),
            (f"{listener.url}/v1#x", "fragment"),
            (f"http://user:pw@{listener.address}/v1", "user name"),
            (f"ftp://{listener.address}/v1", "http"),
            (f"http://{listener.address}/v1 x", "spaces"),
        ]:
            assert any(problem in p for p in url_problems(url)), url
            error = outcome(config(url, NetworkPolicy.parse([listener.address])))
            assert isinstance(error, GatewayError) and error.kind == "config", url
        assert listener.connections == 0


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1", "0x7f000001",
     "[::ffff:127.0.0.1]", "[::ffff:7f00:1]"],
)  # fmt: skip
def test_loopback_in_any_spelling_is_refused_before_connecting(host):
    with Listener() as listener:
        url = f"http://{host}:{listener.port}/v1"
        for models in (False, True):
            error = outcome(config(url), models=models)
            assert isinstance(error, GatewayError)
            if url_problems(url):  # a spelling the HTTP client itself refuses to parse
                assert error.kind == "config" and "not a valid URL" in error.message
            else:
                assert (error.kind, error.message, error.attempts) == (
                    "blocked",
                    BLOCKED_MESSAGE,
                    1,
                )
        assert listener.connections == 0


def test_ipv6_loopback_and_metadata_are_refused_not_attempted():
    for url in ("http://[::1]:8000/v1", "http://169.254.169.254/latest", "http://[fd00:ec2::254]/"):
        error = outcome(config(url))
        assert isinstance(error, GatewayError) and error.kind == "blocked", url


def test_open_and_closed_internal_ports_are_indistinguishable():
    with Listener() as listener:
        seen = set()
        for port in (listener.port, closed_port()):
            for models in (False, True):
                error = outcome(config(f"http://localhost:{port}/v1"), models=models)
                assert isinstance(error, GatewayError)
                seen.add((error.kind, error.message, error.status, error.attempts))
        assert seen == {("blocked", BLOCKED_MESSAGE, None, 1)}
        assert listener.connections == 0


def test_the_allowlist_opens_exactly_the_port_it_names():
    with Listener() as listener, Listener() as other:
        policy = NetworkPolicy.parse([listener.address])
        assert outcome(config(f"{listener.url}/v1", policy), models=True) == ["listener"]
        assert outcome(config(f"http://localhost:{listener.port}/v1", policy), models=True) == [
            "listener"
        ]
        error = outcome(config(f"{other.url}/v1", policy))
        assert isinstance(error, GatewayError) and error.kind == "blocked"
        assert listener.connections >= 2 and other.connections == 0
        assert f"Bearer {KEY}".encode() in listener.received()  # the listener sees keys


def test_a_name_resolving_to_an_internal_address_is_refused(monkeypatch):
    async def resolve(host: str, port: int) -> list:
        assert host == "llm.example.test"
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(netguard, "_resolve", resolve)
    with Listener() as listener:
        url = f"http://llm.example.test:{listener.port}/v1"
        error = outcome(config(url))
        assert isinstance(error, GatewayError) and error.kind == "blocked"
        assert listener.connections == 0
        # Named in the allowlist, the same name is reached.
        assert outcome(config(url, NetworkPolicy.parse(["llm.example.test"])), models=True) == [
            "listener"
        ]
        assert listener.connections == 1


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """DNS may answer differently a second time: the name is resolved once, by the check,
    and the connection is made to that address, never to the name again."""

    async def resolve(host: str, port: int) -> list:
        return [ipaddress.ip_address("127.0.0.1")]

    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # a second resolution would fail loudly
        if isinstance(host, str | bytes) and "rebind" in str(host):
            raise AssertionError("the name was resolved again")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(netguard, "_resolve", resolve)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with Listener() as listener:
        policy = NetworkPolicy.parse([listener.address])
        url = f"http://rebind.example.test:{listener.port}/v1"
        assert outcome(config(url, policy), models=True) == ["listener"]
        assert b"Host: rebind.example.test" in listener.received()


def test_redirects_are_not_followed_even_to_allowed_places():
    with Listener() as target:
        moved = Reply(302, b"moved", {"Location": f"{target.url}/v1/models"})
        with Listener({"/models": moved, "/chat/completions": moved}) as first:
            # Both are allowed: the redirect still is not followed.
            policy = NetworkPolicy.parse([first.address, target.address])
            for models in (False, True):
                error = outcome(config(f"{first.url}/v1", policy), models=models)
                assert isinstance(error, GatewayError)
                assert (error.kind, error.status) == ("client_error", 302)
                assert "redirect" in error.message and target.url not in error.message
            assert first.connections >= 1 and target.connections == 0


def test_what_a_server_answers_is_never_echoed():
    page = b"<h1>INTERNAL-ADMIN-PAGE-7d1f</h1> redis_version:7.2 token=abc"
    replies = {
        "/models": Reply(404, page, {"Content-Type": "text/html"}),
        "/chat/completions": Reply(
            400,
            b'{"error": {"message": "INTERNAL-ADMIN-PAGE-7d1f"}}',
            {"Content-Type": "application/json"},
        ),
    }
    with Listener(replies) as listener:
        policy = NetworkPolicy.parse([listener.address])
        for models in (False, True):
            error = outcome(config(f"{listener.url}/v1", policy), models=models)
            assert isinstance(error, GatewayError)
            assert "INTERNAL-ADMIN-PAGE" not in f"{error} {error!r}"
            assert error.status in (400, 404) and f"HTTP {error.status}" in error.message
    for status in (500, 503):
        with Listener({"/chat/completions": Reply(status, page)}) as listener:
            error = outcome(config(f"{listener.url}/v1", NetworkPolicy.parse([listener.address])))
            assert isinstance(error, GatewayError)
            assert error.message == f"server error (HTTP {status})"


def test_proxy_variables_do_not_carry_requests_elsewhere(monkeypatch):
    """A proxy would make the checked connection the proxy's: the gateway uses none."""
    with Listener() as proxy, Listener() as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        policy = NetworkPolicy.parse([server.address, proxy.address])
        assert outcome(config(f"{server.url}/v1", policy), models=True) == ["listener"]
        assert proxy.connections == 0 and server.connections == 1


def test_the_sites_openai_variables_never_reach_an_endpoint(monkeypatch):
    """The SDK would add headers, an organization and a project from the environment to every
    request: none of them goes to an endpoint's server, only the endpoint's own key."""
    monkeypatch.setenv(
        "OPENAI_CUSTOM_HEADERS", "Authorization: Bearer sk-site-leak\nX-Site: leak-h"
    )
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-leak")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-leak")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-leak")
    with Listener() as server:
        policy = NetworkPolicy.parse([server.address])
        assert outcome(config(f"{server.url}/v1", policy), models=True) == ["listener"]
        assert outcome(config(f"{server.url}/v1", policy)) is not None
        sent = server.received().decode().lower()
    assert sent.count(f"authorization: bearer {KEY}") == 2
    assert "leak" not in sent and "openai-organization" not in sent
