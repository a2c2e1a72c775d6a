"""The workers' internal API: what one process of a deployment asks another.

Served on each worker's `internal_listen`, never on the public listeners,
and only to a caller presenting the deployment's `worker_shared_secret` as a
bearer token (compared in constant time). For now it answers which worker
this is and which duties it holds (operators and the deployment tests use
it); forwarding writes to a room's owner is to come here.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from homeserver.api.http import json_response

PREFIX = "/_homeserver/internal/v1"


def internal_app(secret: str, status: Callable[[], dict[str, Any]]) -> web.Application:
    """The internal listener's app; `status` describes this process."""
    expected = f"Bearer {secret}".encode()

    @web.middleware
    async def authenticate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.headers.get("Authorization")
        if given is None:
            return json_response(401, {"errcode": "M_MISSING_TOKEN", "error": "no secret given"})
        if not hmac.compare_digest(given.encode(), expected):
            return json_response(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "wrong secret"})
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return json_response(404, {"errcode": "M_UNRECOGNIZED", "error": "no such endpoint"})
        except web.HTTPMethodNotAllowed:
            return json_response(405, {"errcode": "M_UNRECOGNIZED", "error": "wrong method"})

    async def get_status(_: web.Request) -> web.Response:
        return json_response(200, status())

    app = web.Application(middlewares=[authenticate])
    app.router.add_get(PREFIX + "/status", get_status)
    return app
