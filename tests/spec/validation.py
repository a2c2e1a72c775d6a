"""Real calls checked against the spec: each answer matched to the spec's
operation and its 2xx body validated with jsonschema (JSON Schema 2020-12,
the dialect of OpenAPI 3.1).

`SpecDriver` sends a scenario's client-server calls (with a user's access
token) and server-server calls (signed by a scripted remote server), asserts
the status the scenario expects, and collects every schema violation instead
of stopping at the first, so one run lists them all.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import aiohttp
import jsonschema
import jsonschema.exceptions
from yarl import URL

from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.spec.openapi import Operation, operations


@cache
def _templates(api: str) -> list[tuple[re.Pattern[str], Operation]]:
    """Each operation's path as a regex, the most literal templates first."""
    compiled = []
    for op in operations(api):
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]*", re.escape(op.path))
        compiled.append((re.compile(f"{pattern}$"), op))
    compiled.sort(key=lambda entry: entry[1].path.count("{"))
    return compiled


def match(api: str, method: str, path: str) -> Operation | None:
    """The spec operation a concrete request (raw path, no query) is a call of."""
    for pattern, op in _templates(api):
        if op.method == method and pattern.match(path):
            return op
    return None


def schema_errors(schema: dict[str, Any], body: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    found = []
    for error in sorted(validator.iter_errors(body), key=lambda e: e.json_path):
        # The deepest reason, where a whole value fails (its instance shortened).
        deepest = jsonschema.exceptions.best_match([error])
        while deepest.context:
            deepest = jsonschema.exceptions.best_match(deepest.context)
        found.append(f"{deepest.json_path}: {_short(deepest.message)}")
    return found


def _short(message: str) -> str:
    return message if len(message) <= 300 else f"{message[:150]} ... {message[-150:]}"


class SpecDriver:
    def __init__(
        self, hs: RunningServer, remote: ScriptedRemote, http: aiohttp.ClientSession
    ) -> None:
        self.hs = hs
        self.remote = remote
        self.http = http
        # Operation names driven to a 2xx answer.
        self.driven: set[str] = set()
        # "METHOD path -> status: violation" for every answer off the spec.
        self.violations: list[str] = []
        # Operation names whose 2xx answer the spec gives no JSON schema for.
        self.unchecked: set[str] = set()

    async def client(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: int = 200,
    ) -> Any:
        """A client-server call; its decoded body (None if not JSON)."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return await self._send(
            "client-server", self.hs.url, method, path, json_body, data, all_headers, expect
        )

    async def federation(
        self, method: str, path: str, *, json_body: Any = None, expect: int = 200
    ) -> Any:
        """A server-server call signed by the scripted remote server."""
        authorization = self.remote.authorization(
            method, self.hs.server.config.server_name, path, json_body
        )
        base = f"https://127.0.0.1:{self.hs.server.federation_port}"
        headers = {"Authorization": authorization}
        return await self._send(
            "server-server", base, method, path, json_body, None, headers, expect
        )

    async def delegation(self) -> Any:
        """GET /.well-known/matrix/server, of the server-server API but served
        where clients look (the client listener, behind the name's HTTPS)."""
        path = "/.well-known/matrix/server"
        return await self._send("server-server", self.hs.url, "GET", path, None, None, {}, 200)

    async def _send(
        self,
        api: str,
        base: str,
        method: str,
        path: str,
        json_body: Any,
        data: bytes | None,
        headers: dict[str, str],
        expect: int,
    ) -> Any:
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json", **headers}
        async with self.http.request(
            method, URL(base + path, encoded=True), data=data, headers=headers, ssl=False
        ) as resp:
            raw = await resp.read()
            content_type = resp.content_type
        body = json.loads(raw) if content_type == "application/json" and raw else None
        assert resp.status == expect, f"{method} {path} -> {resp.status}: {raw[:500]!r}"
        op = match(api, method, path.partition("?")[0])
        assert op is not None, f"{method} {path} is no operation of the spec's {api} API"
        if 200 <= resp.status < 300:
            self.driven.add(op.name)
            schema = op.response_schema(resp.status)
            if schema is None:
                self.unchecked.add(op.name)
            else:
                for error in schema_errors(schema, body):
                    self.violations.append(f"{op.name} -> {resp.status}: {error}")
        return body if body is not None else raw
