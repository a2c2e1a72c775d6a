"""Fetching URLs that users give us without letting them reach inside the
network (server-side request forgery).

Every address a host name resolves to is checked, and the connection is made
to the checked addresses themselves (the resolver below is the connector's
only resolver), so a DNS answer that changes between a check and a connect
(DNS rebinding) cannot slip through. Literal IP hosts skip resolvers, so they
are checked before the request (and odd numeric forms refused outright); redirects are followed by hand, each hop
checked again.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import attrs
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from homeserver.errors import MatrixError

MAX_REDIRECTS = 5
USER_AGENT = "homeserver (bot; URL previews)"
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressPolicy:
    """Public unicast addresses are allowed; so are whitelisted networks."""

    def __init__(self, whitelist: Sequence[str]) -> None:
        self._allow = [ipaddress.ip_network(n) for n in whitelist]

    def allowed(self, host: str) -> bool:
        address: _Address = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address):
            # An IPv4 address in IPv6 clothing is judged as the IPv4 address.
            embedded = address.ipv4_mapped or address.sixtofour
            if embedded is not None:
                address = embedded
            elif address.teredo is not None:
                address = address.teredo[1]
        if any(address in network for network in self._allow):
            return True
        return address.is_global and not address.is_multicast


def looks_like_ip(host: str) -> bool:
    """Whether an HTTP client would connect to this host without resolving
    it: all digits and dots (also legacy forms like 127.1 or 2130706433,
    which some clients pass to the socket as they are), or IPv6."""
    return ":" in host or host.replace(".", "").isdigit()


class _BlockedAddressError(OSError):
    """A host name resolved to an address the policy refuses."""


class _CheckingResolver(AbstractResolver):
    """Resolves with the default resolver, then refuses the whole answer if
    any address in it is not allowed."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or not all(self._policy.allowed(r["host"]) for r in results):
            raise _BlockedAddressError(f"{host} resolves to a blocked address")
        return results

    async def close(self) -> None:
        await self._inner.close()


@attrs.frozen
class Fetched:
    url: str
    content_type: str
    charset: str | None
    body: bytes = attrs.field(repr=False)


def _dns_failure() -> MatrixError:
    # Also what Synapse answers when a name resolves to a blocked address.
    return MatrixError(502, "M_UNKNOWN", "DNS resolution failure during URL preview generation")


class SafeFetcher:
    def __init__(
        self,
        policy: AddressPolicy,
        *,
        max_size: int,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        # None: the system's trust store (config: outbound_tls_ca_file).
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_size = max_size
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=_CheckingResolver(self._policy), ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_url(self, url: str) -> str:
        """The host of an http(s) URL this server may fetch, or a Matrix error."""
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise MatrixError(400, "M_INVALID_PARAM", "Only http and https URLs can be previewed")
        if looks_like_ip(host):
            try:
                allowed = self._policy.allowed(host)
            except ValueError:
                # Not a canonical address: refuse rather than guess where it goes.
                allowed = False
            if not allowed:
                raise MatrixError(403, "M_UNKNOWN", "IP address blocked")
        return host

    async def fetch(self, url: str) -> Fetched:
        """GET a URL (following redirects), at most max_size bytes of body."""
        for _ in range(MAX_REDIRECTS + 1):
            self.check_url(url)
            try:
                async with self._client().get(
                    url, allow_redirects=False, headers={"Accept-Language": "en"}
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in (301, 302, 303, 307, 308) and location:
                        url = urljoin(url, location)
                        continue
                    if resp.status // 100 != 2:
                        raise MatrixError(502, "M_UNKNOWN", f"Got error {resp.status}")
                    body = await self._read(resp)
                    return Fetched(str(resp.url), resp.content_type, resp.charset, body)
            except aiohttp.ClientConnectorDNSError:
                # Also raised for _BlockedAddressError from the resolver.
                raise _dns_failure() from None
            except (aiohttp.ClientError, TimeoutError):
                raise MatrixError(502, "M_UNKNOWN", "Failed to download content") from None
        raise MatrixError(502, "M_UNKNOWN", "Too many redirects")

    async def _read(self, resp: Any) -> bytes:
        too_large = MatrixError(502, "M_TOO_LARGE", "Requested file is too large")
        if resp.content_length is not None and resp.content_length > self._max_size:
            raise too_large
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > self._max_size:
                raise too_large
            parts.append(chunk)
        return b"".join(parts)
