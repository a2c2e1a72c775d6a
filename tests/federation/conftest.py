"""A scripted remote homeserver for federation tests.

`ScriptedRemote` plays another server on 127.0.0.1: it has its own ed25519
signing key, serves HTTPS with its own self-signed certificate, publishes its
keys at /_matrix/key/v2/server, signs the requests it sends to our server with
X-Matrix, and checks the X-Matrix headers of requests our server sends to it.
Tests add the routes they need (`remote.app.router.add_...`) before start.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from signedjson.key import (
    decode_verify_key_bytes,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import sign_json, verify_signed_json
from signedjson.types import SigningKey, VerifyKey
from unpaddedbase64 import decode_base64
from yarl import URL

from federation.auth import parse_x_matrix, request_object, sign_request
from homeserver.keyfiles import ensure_self_signed_certificate
from tests.conftest import RunningServer


def now_ms() -> int:
    return int(time.time() * 1000)


def key_id(key: SigningKey) -> str:
    return f"{key.alg}:{key.version}"


def key_response(
    server_name: str,
    signing_key: SigningKey,
    valid_until_ts: int,
    old: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A signed /_matrix/key/v2/server answer of `server_name`."""
    return sign_json(
        {
            "server_name": server_name,
            "valid_until_ts": valid_until_ts,
            "verify_keys": {
                key_id(signing_key): {"key": encode_verify_key_base64(get_verify_key(signing_key))}
            },
            "old_verify_keys": old or {},
        },
        server_name,
        signing_key,
    )


class ScriptedRemote:
    def __init__(self, tmp: Path, version: str) -> None:
        self.signing_key = generate_signing_key(version)
        self.key_id = key_id(self.signing_key)
        self.verify_key_base64 = encode_verify_key_base64(get_verify_key(self.signing_key))
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.server_name = f"127.0.0.1:{self.port}"
        self._tmp = tmp
        # How long the published key is valid, from the time of each request.
        self.key_validity_ms = 24 * 3600 * 1000
        # Answer /_matrix/key/v2/server after this many seconds (coalescing tests).
        self.key_delay_s = 0.0
        # Replace to serve a different (e.g. forged) key answer.
        self.key_answer: Callable[[], dict[str, Any]] | None = None
        self.key_requests = 0
        # (method, path, origin, body) of every X-Matrix request our server made.
        self.received: list[tuple[str, str, str, Any]] = []
        # Our server's verify keys, once `expect_keys_of` learnt them.
        self.peer_keys: dict[str, VerifyKey] = {}
        self.app = web.Application()
        self.app.router.add_get("/_matrix/key/v2/server", self._keys)
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def key_answer_now(self) -> dict[str, Any]:
        return key_response(self.server_name, self.signing_key, now_ms() + self.key_validity_ms)

    async def _keys(self, _: web.Request) -> web.Response:
        self.key_requests += 1
        if self.key_delay_s:
            await asyncio.sleep(self.key_delay_s)
        answer = self.key_answer() if self.key_answer else self.key_answer_now()
        return web.json_response(answer)

    async def start(self) -> None:
        cert, key = self._tmp / f"{self.port}.crt", self._tmp / f"{self.port}.key"
        ensure_self_signed_certificate(cert, key, "127.0.0.1")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=tls).start()
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def authorization(self, method: str, destination: str, uri: str, content: Any = None) -> str:
        return sign_request(
            method=method,
            uri=uri,
            origin=self.server_name,
            destination=destination,
            content=content,
            signing_key=self.signing_key,
        )

    async def request(
        self,
        hs: RunningServer,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        authorization: str | None | bool = True,
    ) -> tuple[int, Any]:
        """Send a request to our server's federation listener, signed by this remote.

        `authorization`: True signs it properly, a string is sent as is, None
        sends no Authorization header.
        """
        assert self._http is not None
        headers = {}
        if authorization is True:
            headers["Authorization"] = self.authorization(
                method, hs.server.config.server_name, path, json_body
            )
        elif isinstance(authorization, str):
            headers["Authorization"] = authorization
        data = None if json_body is None else json.dumps(json_body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self._http.request(
            method,
            URL(f"https://127.0.0.1:{hs.server.federation_port}{path}", encoded=True),
            data=data,
            headers=headers,
            ssl=False,
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def our_keys(self, hs: RunningServer) -> dict[str, Any]:
        status, body = await self.request(hs, "GET", "/_matrix/key/v2/server", authorization=None)
        assert status == 200, body
        return body

    def handler(
        self, respond: Callable[[web.Request, str, Any], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """An aiohttp handler that checks our server's X-Matrix signature first.

        The signature is verified with the key our server publishes (fetched
        from its key endpoint by `expect_keys_of`); `respond(request, origin,
        body)` gives the JSON answer.
        """

        async def handle(request: web.Request) -> web.Response:
            raw = await request.read()
            body = json.loads(raw) if raw else None
            header = request.headers.get("Authorization", "")
            auth = parse_x_matrix(header)
            assert auth.destination == self.server_name
            obj = request_object(
                request.method, request.raw_path, auth.origin, self.server_name, body
            )
            obj["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
            verify_signed_json(obj, auth.origin, self.peer_keys[auth.key_id])
            self.received.append((request.method, request.path, auth.origin, body))
            return web.json_response(await respond(request, auth.origin, body))

        return handle

    async def expect_keys_of(self, hs: RunningServer) -> None:
        """Learn our server's verify keys, as a real remote would."""
        keys = await self.our_keys(hs)
        self.peer_keys = {
            kid: decode_verify_key_bytes(kid, decode_base64(entry["key"]))
            for kid, entry in keys["verify_keys"].items()
        }


@pytest.fixture
async def remote_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[ScriptedRemote]]]:
    """Make scripted remote servers: `await remote_factory(start=False)` lets a
    test add routes before it starts; stopped afterwards."""
    made: list[ScriptedRemote] = []
    counter = iter(range(1000))

    async def make(*, start: bool = True) -> ScriptedRemote:
        remote = ScriptedRemote(tmp_path, f"r{next(counter)}")
        made.append(remote)
        if start:
            await remote.start()
        return remote

    yield make
    for remote in made:
        await remote.stop()


@pytest.fixture
async def remote(remote_factory: Any) -> ScriptedRemote:
    return await remote_factory()


@pytest.fixture
async def fed_hs(server_factory: Any) -> RunningServer:
    """Our server, allowed to federate with servers on loopback with self-signed certs."""
    return await server_factory(federation_insecure=True)


def path_quote(segment: str) -> str:
    return quote(segment, safe="")
