"""Every endpoint of every spec version `/versions` advertises is served.

Walks the spec's OpenAPI definitions of the client-server and server-server
APIs (tests/spec/*.json, bundled from matrix-org/matrix-spec v1.19) and calls
each operation once over real HTTP, with well-formed placeholder arguments:
client-server calls carry a real user's access token, server-server calls are
signed with X-Matrix by a real (scripted) remote server's key. Whatever the
answer is (200, 400, 403, 404 M_NOT_FOUND...), it must not be "this endpoint
does not exist": 404 or 405 with M_UNRECOGNIZED (or without a Matrix body at
all). The missing endpoints are printed per spec version, including those of
versions not advertised (`pytest tests/spec -q -rP` shows them).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import aiohttp
from yarl import URL

from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.spec.openapi import Operation, highest_version, operations

# Calls that end the walking user's session: made last.
SESSION_ENDERS = ("/logout", "/logout/all")
# Served only when the deployment configures them; the walk's server runs the
# default configuration, where the spec allows them to be absent.
OPTIONAL = {
    # Single sign-on: "servers that do not support SSO" answer these with an error.
    "GET /_matrix/client/v3/login/sso/redirect",
    "GET /_matrix/client/v3/login/sso/redirect/{idpId}",
    # Policy servers (v1.18) are a separate role, not a homeserver's API.
    "POST /_matrix/policy/v1/sign",
    "GET /.well-known/matrix/policy_server",
    # The OAuth 2.0 API: "servers that do not support it" answer 404 M_UNRECOGNIZED.
    "GET /_matrix/client/v1/auth_metadata",
}
# The optional features of the default configuration that have endpoints of
# their own, switched on: the walk checks they are there when configured.
WALK_CONFIG = {
    "federation_insecure": True,
    # Previews of the scenario's own page on loopback.
    "media": {"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.0/8"]},
    "sso": {"login_via_existing_session": True},
    "support": {"support_page": "https://example.org/support"},
    "turn": {"uris": ["turn:turn.example.org:3478?transport=udp"], "shared_secret": "walk"},
}


def is_unrecognised(status: int, body: Any) -> bool:
    if status not in (404, 405):
        return False
    return not isinstance(body, dict) or body.get("errcode") in (None, "M_UNRECOGNIZED")


async def call(
    http: aiohttp.ClientSession,
    hs: RunningServer,
    remote: ScriptedRemote,
    token: str,
    operation: Operation,
) -> tuple[int, Any]:
    """One well-formed call of `operation`; its status and decoded body."""
    values = (
        {"userId": f"@placeholder:{remote.server_name}"} if operation.api != "client-server" else {}
    )
    url = operation.url(values)
    query = operation.required_query()
    if any(p["name"] == "timeout" for p in operation.parameters("query")):
        query["timeout"] = "0"  # long polls answer at once
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    body = {} if operation.method in ("PUT", "POST", "PATCH") else None
    headers: dict[str, str] = {}
    if operation.api == "client-server":
        base = hs.url
        headers["Authorization"] = f"Bearer {token}"
    elif operation.path.startswith("/.well-known/"):
        base = hs.url  # delegation is served where clients look, on the client listener
    else:
        base = f"https://127.0.0.1:{hs.server.federation_port}"
        headers["Authorization"] = remote.authorization(
            operation.method, hs.server.config.server_name, url, body
        )
    async with http.request(
        operation.method,
        URL(base + url, encoded=True),
        data=None if body is None else json.dumps(body).encode(),
        headers={**headers, "Content-Type": "application/json"},
        ssl=False,
        timeout=aiohttp.ClientTimeout(total=20),
    ) as resp:
        raw = await resp.read()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, None


async def missing_endpoints(
    hs: RunningServer, remote: ScriptedRemote, token: str
) -> list[tuple[Operation, int, Any]]:
    """The operations of both APIs our server does not recognise, with the answer."""
    every = [*operations("client-server"), *operations("server-server")]
    every = [op for op in every if op.name not in OPTIONAL]
    first = [op for op in every if not op.path.endswith(SESSION_ENDERS)]
    last = [op for op in every if op.path.endswith(SESSION_ENDERS)]
    gate = asyncio.Semaphore(8)
    missing = []
    async with aiohttp.ClientSession() as http:

        async def walk(op: Operation) -> None:
            async with gate:
                status, body = await call(http, hs, remote, token, op)
            if is_unrecognised(status, body):
                missing.append((op, status, body))

        await asyncio.gather(*(walk(op) for op in first))
        for op in last:
            await walk(op)
    return missing


def report(missing: list[tuple[Operation, int, Any]], advertised: tuple[int, int]) -> str:
    by_version: dict[tuple[int, int], list[str]] = defaultdict(list)
    for op, status, _ in missing:
        by_version[op.added].append(f"  {op.name}  ({op.api}, answered {status})")
    lines = []
    for version in sorted(by_version):
        note = "" if version <= advertised else " (not advertised)"
        lines.append(f"v{version[0]}.{version[1]}{note}:")
        lines.extend(sorted(by_version[version]))
    return "\n".join(lines)


async def test_every_advertised_endpoint_is_served(
    server_factory: Any, remote: ScriptedRemote
) -> None:
    hs = await server_factory(**WALK_CONFIG)
    token = (await hs.register("walker"))["access_token"]
    status, versions = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200, versions
    advertised = highest_version(versions["versions"])

    missing = await missing_endpoints(hs, remote, token)

    print(f"Missing endpoints (highest advertised: v{advertised[0]}.{advertised[1]}):")
    print(report(missing, advertised) or "  none")
    failing = [entry for entry in missing if entry[0].added <= advertised]
    assert not failing, (
        f"/versions advertises v{advertised[0]}.{advertised[1]}, but these endpoints "
        f"answer 'unrecognised':\n{report(failing, advertised)}"
    )
