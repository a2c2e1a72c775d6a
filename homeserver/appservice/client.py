"""Requests this server makes to an application service (not its transactions).

The user and alias queries, the third-party lookups and the ping, each with
the appservice's `hs_token` in the Authorization header (the spec's way since
v1.4). An appservice that is down or answers nonsense makes a query find
nothing rather than fail the client's request, as Synapse does; the ping is the
one call that reports how the appservice failed.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from typing import Any
from urllib.parse import quote

import aiohttp

from homeserver.appservice.registration import AppService
from homeserver.errors import MatrixError

logger = logging.getLogger(__name__)

# Seconds a query may take before it counts as "not found".
QUERY_TIMEOUT_S = 10.0
# The ping reports a timeout after this long.
PING_TIMEOUT_S = 10.0
# Bytes of an appservice's error body quoted back by the ping.
_PING_BODY_LIMIT = 4096
# Bytes a query's answer may have.
_MAX_ANSWER_BYTES = 1024 * 1024


class AppServiceClient:
    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, ping_timeout_s: float = PING_TIMEOUT_S
    ) -> None:
        self._ssl = ssl_context
        self._ping_timeout_s = ping_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl) if self._ssl else None
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def _url(service: AppService, path: str) -> str:
        assert service.url is not None
        return service.url.rstrip("/") + "/_matrix/app/v1" + path

    @staticmethod
    def _headers(service: AppService) -> dict[str, str]:
        return {"Authorization": f"Bearer {service.hs_token}"}

    async def _get(
        self, service: AppService, path: str, params: list[tuple[str, str]] | None = None
    ) -> tuple[int, Any] | None:
        """GET a path of the appservice: (status, decoded JSON or None), or
        None if it could not be reached in time."""
        if service.url is None:
            return None
        try:
            async with self._http().get(
                self._url(service, path),
                params=params,
                headers=self._headers(service),
                timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S),
                allow_redirects=False,
            ) as resp:
                raw = await resp.content.read(_MAX_ANSWER_BYTES + 1)
                if len(raw) > _MAX_ANSWER_BYTES:
                    return resp.status, None
                try:
                    return resp.status, json.loads(raw) if raw else None
                except ValueError:
                    return resp.status, None
        except (TimeoutError, aiohttp.ClientError) as e:
            logger.warning("appservice %s: GET %s failed: %s", service.id, path, e)
            return None

    async def query_user(self, service: AppService, user_id: str) -> bool:
        """Whether the appservice says the user exists (it creates it first)."""
        answer = await self._get(service, "/users/" + quote(user_id, safe=""))
        return answer is not None and answer[0] == 200

    async def query_alias(self, service: AppService, alias: str) -> bool:
        """Whether the appservice says the alias exists (it creates the room first)."""
        answer = await self._get(service, "/rooms/" + quote(alias, safe=""))
        return answer is not None and answer[0] == 200

    async def thirdparty(
        self, service: AppService, path: str, params: list[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        """A third-party lookup (`/thirdparty/user/{protocol}`, `/thirdparty/location`,
        ...): the objects of the appservice's list, or none on any failure."""
        answer = await self._get(service, "/thirdparty" + path, params)
        if answer is None or answer[0] != 200 or not isinstance(answer[1], list):
            return []
        return [item for item in answer[1] if isinstance(item, dict)]

    async def protocol(self, service: AppService, protocol: str) -> dict[str, Any] | None:
        """The appservice's metadata of a protocol, or None."""
        answer = await self._get(service, "/thirdparty/protocol/" + quote(protocol, safe=""))
        if answer is None or answer[0] != 200 or not isinstance(answer[1], dict):
            return None
        return answer[1]

    async def ping(self, service: AppService, transaction_id: str | None) -> int:
        """POST /_matrix/app/v1/ping; the milliseconds it took, or the error
        the client-server ping endpoint answers with."""
        if service.url is None:
            raise MatrixError(
                400, "M_URL_NOT_SET", "Application service doesn't have a URL configured"
            )
        body = {} if transaction_id is None else {"transaction_id": transaction_id}
        started = time.monotonic()
        try:
            async with self._http().post(
                self._url(service, "/ping"),
                json=body,
                headers=self._headers(service),
                timeout=aiohttp.ClientTimeout(total=self._ping_timeout_s),
                allow_redirects=False,
            ) as resp:
                text = (await resp.content.read(_PING_BODY_LIMIT)).decode("utf-8", "replace")
                if not 200 <= resp.status < 300:
                    error = MatrixError(
                        502, "M_BAD_STATUS", f"Ping returned status {resp.status}", body=text
                    )
                    # `status` is also MatrixError's own argument: set apart.
                    error.extra["status"] = resp.status
                    raise error
        except TimeoutError:
            raise MatrixError(
                504, "M_CONNECTION_TIMEOUT", "Timed out waiting for the application service"
            ) from None
        except aiohttp.ClientError as e:
            raise MatrixError(
                502, "M_CONNECTION_FAILED", f"Could not reach the application service: {e}"
            ) from None
        return int((time.monotonic() - started) * 1000)
