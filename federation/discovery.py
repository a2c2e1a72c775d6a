"""Server name resolution: where to connect to reach a server name, per the spec.

The steps (server-server API, "Resolving server names"):

1. an IP literal: that address, the given port or 8448;
2. a hostname with an explicit port: that host and port;
3. /.well-known/matrix/server on the hostname names a delegated server, which
   is resolved by rules 1, 2, SRV or port 8448 in turn, with the delegated
   name as Host and TLS name;
4. SRV `_matrix-fed._tcp.<hostname>`, then the deprecated `_matrix._tcp`;
5. the hostname on port 8448.

Well-known answers and SRV lookups are injected callables, so that tests can
answer them and the real ones (HTTPS, aiodns) stay small.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable

import aiodns
import aiohttp
import attrs
import pycares

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8448
# How long a well-known answer is kept when the response says nothing, the
# most we keep one, and how long a failure is remembered (as Synapse does).
WELL_KNOWN_DEFAULT_TTL_S = 24 * 3600
WELL_KNOWN_MAX_TTL_S = 48 * 3600
WELL_KNOWN_FAILURE_TTL_S = 3600
WELL_KNOWN_MAX_BYTES = 50 * 1024


@attrs.frozen
class Destination:
    """Where and how to talk to a server."""

    # The name or address to connect to, and its port.
    connect_host: str
    port: int
    # The name the TLS certificate must be valid for (also the SNI).
    tls_name: str
    # The Host header.
    host_header: str


@attrs.frozen
class WellKnownAnswer:
    # The m.server value, or None when the server publishes none (or a bad one).
    server: str | None
    # Seconds the answer may be cached.
    ttl_s: float


WellKnownFetch = Callable[[str], Awaitable[WellKnownAnswer]]
"""hostname -> the server's /.well-known/matrix/server answer."""

SrvLookup = Callable[[str], Awaitable[list[tuple[str, int]]]]
"""SRV record name -> [(target, port)] in the order to try ([] if none)."""


def split_server_name(server_name: str) -> tuple[str, int | None]:
    """'host[:port]' (IPv6 in brackets) -> (host without brackets, port or None).

    Raises ValueError for a name that is not a server name.
    """
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            raise ValueError(f"bad server name {server_name!r}")
        host, rest = server_name[1:end], server_name[end + 1 :]
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = server_name.partition(":")
        rest = sep + port_text
    if not host:
        raise ValueError(f"bad server name {server_name!r}")
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
        raise ValueError(f"bad port in server name {server_name!r}")
    return host, int(rest[1:])


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class ServerResolver:
    """Resolves server names to destinations, caching well-known answers."""

    def __init__(
        self, well_known: WellKnownFetch, srv: SrvLookup, clock: Callable[[], float] = time.time
    ) -> None:
        self._well_known = well_known
        self._srv = srv
        self._clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._inflight: dict[str, asyncio.Future[str | None]] = {}

    async def resolve(self, server_name: str) -> Destination:
        host, port = split_server_name(server_name)
        if is_ip_literal(host) or port is not None:
            return Destination(host, port or DEFAULT_PORT, host, server_name)
        delegated = await self._delegation(host)
        if delegated is not None:
            try:
                d_host, d_port = split_server_name(delegated)
            except ValueError:
                logger.info("ignoring bad well-known delegation %r of %s", delegated, host)
            else:
                if is_ip_literal(d_host) or d_port is not None:
                    return Destination(d_host, d_port or DEFAULT_PORT, d_host, delegated)
                return await self._by_srv(d_host)
        return await self._by_srv(host)

    async def _by_srv(self, host: str) -> Destination:
        """Steps 3.3-3.5 and 4-6: SRV records of `host`, else port 8448."""
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            try:
                records = await self._srv(f"{service}.{host}")
            except Exception as e:
                logger.info("SRV lookup %s.%s failed: %s", service, host, e)
                records = []
            if records:
                target, port = records[0]
                return Destination(target, port, host, host)
        return Destination(host, DEFAULT_PORT, host, host)

    async def _delegation(self, host: str) -> str | None:
        """The m.server of `host`'s well-known, cached; concurrent lookups share one fetch."""
        cached = self._cache.get(host)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        pending = self._inflight.get(host)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[host] = future
        try:
            try:
                answer = await self._well_known(host)
            except Exception as e:
                logger.info("well-known lookup of %s failed: %s", host, e)
                answer = WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL_S)
            ttl = min(answer.ttl_s, WELL_KNOWN_MAX_TTL_S)
            self._cache[host] = (self._clock() + ttl, answer.server)
            future.set_result(answer.server)
            return answer.server
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            del self._inflight[host]
            if future.done() and not future.cancelled():
                future.exception()


def _max_age(cache_control: str | None) -> float | None:
    """The max-age of a Cache-Control header, if it has one."""
    for part in (cache_control or "").split(","):
        name, _, number = part.strip().partition("=")
        if name.lower() == "max-age" and number.isdigit():
            return float(number)
    return None


class HttpWellKnown:
    """Fetches https://<host>/.well-known/matrix/server (the real WellKnownFetch)."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession], *, verify_tls: bool) -> None:
        self._session = session
        self._verify_tls = verify_tls

    async def __call__(self, host: str) -> WellKnownAnswer:
        url = f"https://{host}/.well-known/matrix/server"
        try:
            async with self._session().get(
                url,
                ssl=None if self._verify_tls else False,
                timeout=aiohttp.ClientTimeout(total=30),
                max_redirects=5,
            ) as resp:
                if resp.status != 200:
                    return WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL_S)
                body = await resp.content.read(WELL_KNOWN_MAX_BYTES + 1)
                ttl = _max_age(resp.headers.get("Cache-Control"))
        except (aiohttp.ClientError, TimeoutError) as e:
            logger.info("no well-known from %s: %s", host, e)
            return WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL_S)
        try:
            if len(body) > WELL_KNOWN_MAX_BYTES:
                raise ValueError("too large")
            server = json.loads(body)["m.server"]
            if not isinstance(server, str):
                raise ValueError("m.server is not a string")
            split_server_name(server)
        except (ValueError, KeyError, TypeError) as e:
            logger.info("bad well-known from %s: %s", host, e)
            return WellKnownAnswer(None, WELL_KNOWN_FAILURE_TTL_S)
        return WellKnownAnswer(server, ttl if ttl is not None else WELL_KNOWN_DEFAULT_TTL_S)


class DnsSrv:
    """SRV lookups with aiodns (the real SrvLookup)."""

    def __init__(self) -> None:
        self._resolver: aiodns.DNSResolver | None = None

    async def __call__(self, name: str) -> list[tuple[str, int]]:
        if self._resolver is None:
            self._resolver = aiodns.DNSResolver()
        try:
            result = await self._resolver.query_dns(name, "SRV")
        except aiodns.error.DNSError:
            return []
        records = [
            r.data
            for r in result.answer
            if isinstance(r.data, pycares.SRVRecordData) and r.data.target not in ("", ".")
        ]
        # Lowest priority first; among equals, the heavier weight first.
        records.sort(key=lambda d: (d.priority, -d.weight))
        return [(d.target.rstrip("."), d.port) for d in records]
