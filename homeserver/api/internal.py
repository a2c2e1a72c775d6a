"""The workers' internal API: what one process of a deployment asks another.

Served on each worker's `internal_listen`, never on the public listeners,
and only to a caller presenting the deployment's `worker_shared_secret` as a
bearer token (compared in constant time). It answers which worker this is
and which duties it holds (operators and the deployment tests use it), and
takes room writes forwarded to the room's owner (cluster/forwarding.py):
those run here and are never forwarded again, so two processes that
disagree for a moment on who owns a room cannot pass a send back and forth.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from homeserver.api.http import json_response
from homeserver.cluster.forwarding import INTERNAL_PREFIX, LocalSend, stored_to_json
from homeserver.errors import MatrixError

PREFIX = INTERNAL_PREFIX
# A forwarded event is at most a PDU (65,536 bytes) and its envelope.
_MAX_BODY = 256 * 1024


def _bad_json(message: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", message)


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad_json(f"{key} must be a string")
    return value


def send_args(body: Any) -> tuple[str, dict[str, Any]]:
    """A forwarded send's room and EventPipeline.send arguments, checked."""
    if not isinstance(body, dict):
        raise _bad_json("expected a JSON object")
    for key in ("room_id", "type", "sender"):
        if not isinstance(body.get(key), str):
            raise _bad_json(f"{key} must be a string")
    if not isinstance(body.get("content"), dict):
        raise _bad_json("content must be an object")
    txn = body.get("txn")
    if txn is not None and not (
        isinstance(txn, list) and len(txn) == 2 and all(isinstance(t, str) for t in txn)
    ):
        raise _bad_json("txn must be [device id, transaction id]")
    ts = body.get("origin_server_ts")
    if ts is not None and type(ts) is not int:
        raise _bad_json("origin_server_ts must be an integer")
    return body["room_id"], {
        "type": body["type"],
        "sender": body["sender"],
        "content": body["content"],
        "state_key": _optional_str(body, "state_key"),
        "redacts": _optional_str(body, "redacts"),
        "txn": (txn[0], txn[1]) if txn is not None else None,
        "origin_server_ts": ts,
    }


def internal_app(
    secret: str, status: Callable[[], dict[str, Any]], local_send: LocalSend | None = None
) -> web.Application:
    """The internal listener's app; `status` describes this process;
    `local_send` (an event persister's) takes forwarded room writes."""
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
        except web.HTTPNotFound:
            return json_response(404, {"errcode": "M_UNRECOGNIZED", "error": "no such endpoint"})
        except web.HTTPMethodNotAllowed:
            return json_response(405, {"errcode": "M_UNRECOGNIZED", "error": "wrong method"})

    # Sends forwarded here and persisted (in the status: the deployment
    # tests see where a room's writes ran).
    taken = [0]

    async def get_status(_: web.Request) -> web.Response:
        return json_response(200, {**status(), "forwarded_sends_taken": taken[0]})

    app = web.Application(middlewares=[authenticate], client_max_size=_MAX_BODY)
    app.router.add_get(PREFIX + "/status", get_status)
    if local_send is not None:
        send = local_send

        async def send_event(request: web.Request) -> web.Response:
            try:
                body = json.loads(await request.read())
            except ValueError:
                return json_response(400, {"errcode": "M_NOT_JSON", "error": "not JSON"})
            room_id, args = send_args(body)
            stored = await send(room_id, **args)
            taken[0] += 1
            return json_response(200, stored_to_json(stored))

        app.router.add_post(PREFIX + "/send_event", send_event)
    return app
