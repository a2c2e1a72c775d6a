"""Server name resolution, TLS, address blocking and backoff of outbound requests."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from signedjson.key import generate_signing_key

from federation.backoff import Backoff
from federation.discovery import (
    WELL_KNOWN_DEFAULT_TTL_S,
    WELL_KNOWN_FAILURE_TTL_S,
    Destination,
    HttpWellKnown,
    ServerResolver,
    WellKnownAnswer,
)
from federation.transport import FederationClient, FederationError
from homeserver.config import DEFAULT_FEDERATION_IP_RANGE_BLACKLIST
from storage.destinations import DestinationStore
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote


class FakeDns:
    """Scripted well-known and SRV answers; records every lookup."""

    def __init__(
        self,
        well_known: dict[str, str | None] | None = None,
        srv: dict[str, list[tuple[str, int]]] | None = None,
    ) -> None:
        self.well_known_answers = well_known or {}
        self.srv_answers = srv or {}
        self.lookups: list[str] = []
        self.now = 1000.0

    async def well_known(self, host: str) -> WellKnownAnswer:
        self.lookups.append(f"well-known {host}")
        await asyncio.sleep(0.01)
        if host not in self.well_known_answers:
            return WellKnownAnswer(None, 3600)
        return WellKnownAnswer(self.well_known_answers[host], 600)

    async def srv(self, name: str) -> list[tuple[str, int]]:
        self.lookups.append(f"srv {name}")
        return self.srv_answers.get(name, [])

    def resolver(self) -> ServerResolver:
        return ServerResolver(self.well_known, self.srv, clock=lambda: self.now)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1.2.3.4", Destination("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
        ("1.2.3.4:99", Destination("1.2.3.4", 99, "1.2.3.4", "1.2.3.4:99")),
        ("[2001:db8::1]", Destination("2001:db8::1", 8448, "2001:db8::1", "[2001:db8::1]")),
        ("[::1]:8000", Destination("::1", 8000, "::1", "[::1]:8000")),
        ("example.org:8000", Destination("example.org", 8000, "example.org", "example.org:8000")),
    ],
)
async def test_ip_literals_and_explicit_ports_need_no_lookup(
    name: str, expected: Destination
) -> None:
    dns = FakeDns(well_known={"example.org": "elsewhere.example"})
    assert await dns.resolver().resolve(name) == expected
    assert dns.lookups == []


async def test_well_known_delegation_with_a_port() -> None:
    dns = FakeDns(
        well_known={"example.org": "matrix.example.net:9000"},
        srv={"_matrix-fed._tcp.matrix.example.net": [("srv.example.net", 1)]},
    )
    assert await dns.resolver().resolve("example.org") == Destination(
        "matrix.example.net", 9000, "matrix.example.net", "matrix.example.net:9000"
    )
    assert dns.lookups == ["well-known example.org"]


async def test_well_known_delegation_to_an_ip_literal() -> None:
    dns = FakeDns(well_known={"example.org": "[2001:db8::5]"})
    assert await dns.resolver().resolve("example.org") == Destination(
        "2001:db8::5", 8448, "2001:db8::5", "[2001:db8::5]"
    )


async def test_well_known_delegation_without_a_port_uses_srv_of_the_delegate() -> None:
    dns = FakeDns(
        well_known={"example.org": "matrix.example.net"},
        srv={"_matrix-fed._tcp.matrix.example.net": [("fed.example.net", 8449)]},
    )
    # Connect to the SRV target; the certificate and Host are the delegate's.
    assert await dns.resolver().resolve("example.org") == Destination(
        "fed.example.net", 8449, "matrix.example.net", "matrix.example.net"
    )


async def test_delegate_without_srv_falls_back_to_the_legacy_record_then_8448() -> None:
    dns = FakeDns(
        well_known={"a.example": "matrix.a.example", "b.example": "matrix.b.example"},
        srv={"_matrix._tcp.matrix.a.example": [("old.a.example", 7000)]},
    )
    resolver = dns.resolver()
    assert await resolver.resolve("a.example") == Destination(
        "old.a.example", 7000, "matrix.a.example", "matrix.a.example"
    )
    assert await resolver.resolve("b.example") == Destination(
        "matrix.b.example", 8448, "matrix.b.example", "matrix.b.example"
    )
    assert dns.lookups[-2:] == [
        "srv _matrix-fed._tcp.matrix.b.example",
        "srv _matrix._tcp.matrix.b.example",
    ]


async def test_without_well_known_srv_of_the_name_itself_then_8448() -> None:
    dns = FakeDns(srv={"_matrix-fed._tcp.a.example": [("fed.a.example", 443)]})
    resolver = dns.resolver()
    assert await resolver.resolve("a.example") == Destination(
        "fed.a.example", 443, "a.example", "a.example"
    )
    assert await resolver.resolve("b.example") == Destination(
        "b.example", 8448, "b.example", "b.example"
    )


async def test_well_known_answers_are_cached_and_expire() -> None:
    dns = FakeDns(well_known={"example.org": "matrix.example.net:9000"})
    resolver = dns.resolver()
    await asyncio.gather(*(resolver.resolve("example.org") for _ in range(5)))
    await resolver.resolve("example.org")
    assert dns.lookups == ["well-known example.org"]
    dns.now += 601
    dns.well_known_answers["example.org"] = "moved.example.net:9001"
    assert (await resolver.resolve("example.org")).connect_host == "moved.example.net"
    assert dns.lookups == ["well-known example.org"] * 2


async def test_bad_server_names_are_refused() -> None:
    resolver = FakeDns().resolver()
    for name in ("", "example.org:notaport", "example.org:0", "[::1", "[::1]x"):
        with pytest.raises(ValueError):
            await resolver.resolve(name)


def make_client(hs: RunningServer, **kwargs: Any) -> FederationClient:
    return FederationClient(
        server_name="localhost",
        signing_key=generate_signing_key("t"),
        resolver=FakeDns().resolver(),
        **kwargs,
    )


async def test_certificates_are_verified_by_default(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    client = make_client(fed_hs)
    try:
        with pytest.raises(FederationError) as caught:
            await client.get_json(remote.server_name, "/_matrix/key/v2/server", signed=False)
        assert caught.value.status is None
        assert "certificate" in str(caught.value).lower()
    finally:
        await client.close()


async def test_internal_addresses_are_refused_unless_insecure(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    client = make_client(
        fed_hs, verify_tls=False, blocked_networks=DEFAULT_FEDERATION_IP_RANGE_BLACKLIST
    )
    try:
        for name in (remote.server_name, f"localhost:{remote.port}"):
            with pytest.raises(FederationError) as caught:
                await client.get_json(name, "/_matrix/key/v2/server", signed=False)
            assert "federation" in str(caught.value)
        assert remote.key_requests == 0
    finally:
        await client.close()
    # The same request with nothing blocked (federation_insecure) goes through.
    open_client = make_client(fed_hs, verify_tls=False)
    try:
        answer = await open_client.get_json(
            f"localhost:{remote.port}", "/_matrix/key/v2/server", signed=False
        )
        assert answer["server_name"] == remote.server_name
    finally:
        await open_client.close()


async def test_failing_destinations_are_backed_off(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    store = DestinationStore(fed_hs.pool)
    client = make_client(fed_hs, verify_tls=False, backoff=Backoff(store))
    try:
        with pytest.raises(FederationError):
            await client.get_json("127.0.0.1:1", "/_matrix/federation/v1/version")
        row = await store.get("127.0.0.1:1")
        assert row is not None and row.retry_interval_ms > 0 and row.failure_ts is not None
        # Not tried again before the interval is over...
        with pytest.raises(FederationError) as caught:
            await client.get_json("127.0.0.1:1", "/_matrix/federation/v1/version")
        assert "backing off" in str(caught.value)
        # ...and a second failure waits longer (doubled, at most 45 s early in an outage).
        with pytest.raises(FederationError):
            await client.get_json(
                "127.0.0.1:1", "/_matrix/federation/v1/version", ignore_backoff=True
            )
        again = await store.get("127.0.0.1:1")
        assert again is not None and again.retry_interval_ms > row.retry_interval_ms

        # A server that answers is no longer backed off.
        await Backoff(store).failed(remote.server_name)
        fresh = make_client(fed_hs, verify_tls=False, backoff=Backoff(store))
        try:
            await fresh.get_json(
                remote.server_name, "/_matrix/key/v2/server", signed=False, ignore_backoff=True
            )
            assert await fresh.get_json(remote.server_name, "/_matrix/key/v2/server", signed=False)
        finally:
            await fresh.close()
        done = await store.get(remote.server_name)
        assert done is not None and done.retry_interval_ms == 0 and done.failure_ts is None
    finally:
        await client.close()


async def test_requests_to_ourselves_are_refused(fed_hs: RunningServer) -> None:
    with pytest.raises(FederationError):
        await fed_hs.server.federation_client.get_json("localhost", "/_matrix/key/v2/server")


class _ToRemote(AbstractResolver):
    """Sends every host name to the scripted remote (standing in for port 443)."""

    def __init__(self, port: int) -> None:
        self._port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=self._port, family=family, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


async def test_well_known_is_fetched_over_https_with_its_cache_lifetime(
    remote_factory: Any,
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    answers = {
        "good.example": web.json_response(
            {"m.server": "matrix.good.example:443"}, headers={"Cache-Control": "max-age=120"}
        ),
        "plain.example": web.json_response({"m.server": "matrix.plain.example"}),
        "broken.example": web.Response(text="not json"),
        "badname.example": web.json_response({"m.server": "a:b:c"}),
    }

    async def well_known(request: web.Request) -> web.StreamResponse:
        answer = answers.get(request.host)
        return answer if answer is not None else web.Response(status=404)

    remote.app.router.add_get("/.well-known/matrix/server", well_known)
    await remote.start()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_ToRemote(remote.port)))
    try:
        fetch = HttpWellKnown(lambda: session, verify_tls=False)
        assert await fetch("good.example") == WellKnownAnswer("matrix.good.example:443", 120)
        assert await fetch("plain.example") == WellKnownAnswer(
            "matrix.plain.example", WELL_KNOWN_DEFAULT_TTL_S
        )
        for host in ("broken.example", "badname.example", "missing.example"):
            assert await fetch(host) == WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL_S)
        # A self-signed certificate is refused when verification is on.
        strict = HttpWellKnown(lambda: session, verify_tls=True)
        assert await strict("good.example") == WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL_S)
    finally:
        await session.close()
