"""Outbound federation requests: resolved, TLS-checked, signed, pooled.

`FederationClient` is what every federation service uses to talk to another
server. It resolves the server name (discovery.py), refuses internal
addresses unless configured for tests, verifies TLS certificates against the
server's (or its delegate's) name, signs each request with X-Matrix, honours
per-destination backoff, and turns every failure into `FederationError`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack
from urllib.parse import urlencode

import aiohttp
import attrs
from aiohttp.abc import AbstractResolver, ResolveResult
from signedjson.types import SigningKey
from yarl import URL

from federation.auth import sign_request
from federation.backoff import Backoff
from federation.discovery import ServerResolver, is_ip_literal

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
# Room state answers of big rooms are large; anything beyond this is refused.
MAX_RESPONSE_BYTES = 100 * 1024 * 1024

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class _Request:
    """A request ready to send: where to, with which headers and body."""

    url: URL
    headers: dict[str, str]
    data: bytes | None
    # The name the certificate must be valid for; None when TLS is not checked.
    tls_name: str | None


class RequestOptions(TypedDict, total=False):
    """The options of `FederationClient.request_json` that its get, put and
    post shorthands pass on."""

    query: Mapping[str, Any] | None
    signed: bool
    ignore_backoff: bool
    timeout_s: float | None


class FederationError(Exception):
    """A request to another server failed; `status`/`errcode` when it answered."""

    def __init__(
        self,
        destination: str,
        message: str,
        *,
        status: int | None = None,
        errcode: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination
        self.status = status
        self.errcode = errcode
        self.body = body


def is_blocked(address: str, networks: Sequence[IpNetwork]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in networks)


class _FilteringResolver(AbstractResolver):
    """DNS that never hands out blocked addresses (no SSRF into our network)."""

    def __init__(self, networks: Sequence[IpNetwork]) -> None:
        self._inner = aiohttp.DefaultResolver()
        self._networks = networks

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not is_blocked(r["host"], self._networks)]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses federation may not use")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class FederationClient:
    def __init__(
        self,
        *,
        server_name: str,
        signing_key: SigningKey,
        resolver: ServerResolver,
        backoff: Backoff | None = None,
        verify_tls: bool = True,
        blocked_networks: Iterable[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connection_limit: int = 100,
    ) -> None:
        self.server_name = server_name
        self._signing_key = signing_key
        self._resolver = resolver
        self._backoff = backoff
        self._verify_tls = verify_tls
        self._blocked = [ipaddress.ip_network(n, strict=False) for n in blocked_networks]
        self._timeout_s = timeout_s
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled HTTP session, made on first use (it needs the running loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit,
                limit_per_host=10,
                resolver=_FilteringResolver(self._blocked) if self._blocked else None,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": "homeserver-federation"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(self, destination: str, path: str, **options: Unpack[RequestOptions]) -> Any:
        return await self.request_json("GET", destination, path, **options)

    async def put_json(
        self, destination: str, path: str, body: Any, **options: Unpack[RequestOptions]
    ) -> Any:
        return await self.request_json("PUT", destination, path, body=body, **options)

    async def post_json(
        self, destination: str, path: str, body: Any, **options: Unpack[RequestOptions]
    ) -> Any:
        return await self.request_json("POST", destination, path, body=body, **options)

    async def request_json(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        signed: bool = True,
        ignore_backoff: bool = False,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer.

        `path` must be percent-encoded already (quote path segments with
        `urllib.parse.quote(segment, safe="")`): it is signed as sent.
        Raises FederationError on any failure, including a non-2xx answer.
        """
        request = await self._prepare(
            method, destination, path, query, body, signed, ignore_backoff
        )
        try:
            async with self.session().request(
                method,
                request.url,
                data=request.data,
                headers=request.headers,
                ssl=None if self._verify_tls else False,
                server_hostname=request.tls_name,
                timeout=aiohttp.ClientTimeout(total=timeout_s or self._timeout_s),
                allow_redirects=False,
            ) as resp:
                raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            await self._failed(destination)
            raise FederationError(destination, f"{method} {path} failed: {e!r}") from None
        await self._answered(destination, status)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise FederationError(destination, "response too large", status=status)
        try:
            decoded = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            decoded = None
            if 200 <= status < 300:
                raise FederationError(destination, "response is not JSON", status=status) from None
        if not 200 <= status < 300:
            errcode = decoded.get("errcode") if isinstance(decoded, dict) else None
            error = decoded.get("error") if isinstance(decoded, dict) else None
            raise FederationError(
                destination,
                f"{method} {path} answered {status} {errcode or ''} {error or ''}".rstrip(),
                status=status,
                errcode=errcode if isinstance(errcode, str) else None,
                body=decoded,
            )
        return decoded

    @contextlib.asynccontextmanager
    async def get_stream(
        self,
        destination: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A signed GET whose answer is handed over unread, whatever its status.

        For answers that are not JSON or too large to hold in memory (media):
        the caller reads the body inside the `async with` (and handles the
        aiohttp errors of reading it). `timeout_s` bounds the connection and
        every wait for data, not the whole transfer, so a large file arriving
        steadily is not cut off.
        """
        request = await self._prepare("GET", destination, path, query, None, True, False)
        wait_s = timeout_s or self._timeout_s
        try:
            resp = await self.session().get(
                request.url,
                headers=request.headers,
                ssl=None if self._verify_tls else False,
                server_hostname=request.tls_name,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=wait_s, sock_read=wait_s),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            await self._failed(destination)
            raise FederationError(destination, f"GET {path} failed: {e!r}") from None
        try:
            await self._answered(destination, resp.status)
            yield resp
        finally:
            resp.release()

    @contextlib.asynccontextmanager
    async def open_url(
        self, url: str, *, timeout_s: float | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A plain GET of a URL another server pointed us to (a media
        redirect), answer unread as with `get_stream`. Addresses are blocked
        as for server names; redirects are not followed."""
        target = URL(url)
        host = target.host or ""
        if target.scheme not in ("http", "https") or not host:
            raise FederationError(url, "only http and https URLs can be followed")
        if is_ip_literal(host) and is_blocked(host, self._blocked):
            raise FederationError(url, "address is not allowed for federation")
        wait_s = timeout_s or self._timeout_s
        try:
            resp = await self.session().get(
                target,
                ssl=None if self._verify_tls else False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=wait_s, sock_read=wait_s),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise FederationError(url, f"GET failed: {e!r}") from None
        try:
            yield resp
        finally:
            resp.release()

    async def _prepare(
        self,
        method: str,
        destination: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        signed: bool,
        ignore_backoff: bool,
    ) -> _Request:
        """Check backoff, resolve the destination, refuse blocked addresses, sign."""
        if destination == self.server_name:
            raise FederationError(destination, "refusing to send a request to ourselves")
        if self._backoff is not None and not ignore_backoff:
            retry_at = await self._backoff.retry_at(destination)
            if retry_at is not None:
                raise FederationError(destination, f"backing off until {retry_at}")
        try:
            target = await self._resolver.resolve(destination)
        except ValueError as e:
            raise FederationError(destination, f"cannot resolve: {e}") from None
        if is_ip_literal(target.connect_host) and is_blocked(target.connect_host, self._blocked):
            raise FederationError(destination, "address is not allowed for federation")
        uri = path + ("?" + urlencode(query, doseq=True) if query else "")
        host = target.connect_host
        if ":" in host:
            host = f"[{host}]"
        url = URL(f"https://{host}:{target.port}{uri}", encoded=True)
        headers = {"Host": target.host_header}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if signed:
            headers["Authorization"] = sign_request(
                method=method,
                uri=uri,
                origin=self.server_name,
                destination=destination,
                content=body,
                signing_key=self._signing_key,
            )
        return _Request(url, headers, data, target.tls_name if self._verify_tls else None)

    async def _answered(self, destination: str, status: int) -> None:
        """Backoff bookkeeping for an answer: server errors count as failures."""
        if status >= 500 or status == 429:
            await self._failed(destination)
        elif self._backoff is not None:
            await self._backoff.succeeded(destination)

    async def _failed(self, destination: str) -> None:
        if self._backoff is not None:
            await self._backoff.failed(destination)
