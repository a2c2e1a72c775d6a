"""The workers' internal API: what one process of a deployment asks another.

Served on each worker's `internal_listen`, never on the public listeners,
and only to a caller presenting the deployment's `worker_shared_secret` as a
bearer token (compared in constant time). It answers which worker this is
and which duties it holds (operators and the deployment tests use it), and
takes room writes forwarded to the room's owner (cluster/forwarding.py),
one endpoint `room_write/{operation}` for the operations of
cluster/write_ops.py, whose arguments it checks (400 M_BAD_JSON before
anything runs): those run here and are never forwarded again, so two
processes that disagree for a moment on who owns a room cannot pass a write
back and forth.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from federation.http import MAX_FEDERATION_BODY_BYTES
from homeserver.api.http import json_response
from homeserver.cluster.forwarding import INTERNAL_PREFIX
from homeserver.cluster.owners import RoomWriteRouting
from homeserver.cluster.write_ops import OPERATIONS
from homeserver.errors import MatrixError

PREFIX = INTERNAL_PREFIX
# A forwarded write is at most a send_join answer's state and auth chain
# (federation/http.py reads at most 8 MiB of one) re-encoded, and its envelope.
_MAX_BODY = 2 * MAX_FEDERATION_BODY_BYTES


def internal_app(
    secret: str, status: Callable[[], dict[str, Any]], routing: RoomWriteRouting | None = None
) -> web.Application:
    """The internal listener's app; `status` describes this process;
    `routing` says which persisters it sees up and holds, in an event
    persister, the pipeline methods (by operation of cluster/write_ops.py)
    that take forwarded room writes."""
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
        except MatrixError as e:
            return json_response(e.status, e.to_json())
        except web.HTTPRequestEntityTooLarge:
            return json_response(413, {"errcode": "M_TOO_LARGE", "error": "body too large"})
        except web.HTTPNotFound:
            return json_response(404, {"errcode": "M_UNRECOGNIZED", "error": "no such endpoint"})
        except web.HTTPMethodNotAllowed:
            return json_response(405, {"errcode": "M_UNRECOGNIZED", "error": "wrong method"})

    # Writes forwarded here and run, by operation (in the status: the
    # deployment tests see where a room's writes ran).
    taken: dict[str, int] = dict.fromkeys(OPERATIONS, 0)

    async def get_status(_: web.Request) -> web.Response:
        up = {"persisters_up": routing.owners.live()} if routing is not None else {}
        return json_response(200, {**status(), **up, "forwarded_writes_taken": taken})

    app = web.Application(middlewares=[authenticate], client_max_size=_MAX_BODY)
    app.router.add_get(PREFIX + "/status", get_status)
    if routing is not None and routing.local_writes is not None:
        writes = routing.local_writes

        async def room_write(request: web.Request) -> web.Response:
            op = OPERATIONS.get(request.match_info["operation"])
            if op is None:
                raise MatrixError(404, "M_UNRECOGNIZED", "no such room write")
            try:
                body = json.loads(await request.read())
            except ValueError:
                raise MatrixError(400, "M_NOT_JSON", "not JSON") from None
            result = await writes[op.name](**op.args_from_json(body))
            taken[op.name] += 1
            return json_response(200, {"result": op.result.encode(result)})

        app.router.add_post(PREFIX + "/room_write/{operation}", room_write)
    return app
