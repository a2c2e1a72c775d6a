"""The API the processes of a deployment call on each other.

Served on a worker's `internal_listen` only, never on the public listeners,
and every request must carry the deployment's shared secret
(`worker_shared_secret`) as a bearer token. Today it takes one call: a room
write forwarded to the room's owner (cluster/forwarding.py), which runs it
here, and never forwards it again (two processes that disagree for a moment
on who owns a room must not pass a send back and forth).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from homeserver.cluster.forwarding import INTERNAL_PREFIX, LocalSend, stored_to_json
from homeserver.errors import MatrixError

logger = logging.getLogger(__name__)

# A forwarded event is at most a PDU (65,536 bytes) and its envelope.
_MAX_BODY = 256 * 1024


def _error(status: int, errcode: str, message: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": message}, status=status)


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise MatrixError(400, "M_BAD_JSON", f"{key} must be a string")
    return value


def _send_args(body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise MatrixError(400, "M_BAD_JSON", "expected a JSON object")
    for key in ("room_id", "type", "sender"):
        if not isinstance(body.get(key), str):
            raise MatrixError(400, "M_BAD_JSON", f"{key} must be a string")
    if not isinstance(body.get("content"), dict):
        raise MatrixError(400, "M_BAD_JSON", "content must be an object")
    txn = body.get("txn")
    if txn is not None and not (
        isinstance(txn, list) and len(txn) == 2 and all(isinstance(t, str) for t in txn)
    ):
        raise MatrixError(400, "M_BAD_JSON", "txn must be [device id, transaction id]")
    ts = body.get("origin_server_ts")
    if ts is not None and type(ts) is not int:
        raise MatrixError(400, "M_BAD_JSON", "origin_server_ts must be an integer")
    return body["room_id"], {
        "type": body["type"],
        "sender": body["sender"],
        "content": body["content"],
        "state_key": _optional_str(body, "state_key"),
        "redacts": _optional_str(body, "redacts"),
        "txn": (txn[0], txn[1]) if txn is not None else None,
        "origin_server_ts": ts,
    }


def internal_app(local_send: LocalSend, *, secret: str, worker: str) -> web.Application:
    expected = f"Bearer {secret}".encode()

    @web.middleware
    async def authenticated(request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            logger.warning("internal API: refused a request without the shared secret")
            return _error(401, "M_UNKNOWN_TOKEN", "The internal API needs the shared secret")
        try:
            return await handler(request)
        except MatrixError as e:
            return web.json_response(e.to_json(), status=e.status)

    async def send_event(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "M_NOT_JSON", "The body is not JSON")
        room_id, args = _send_args(body)
        stored = await local_send(room_id, **args)
        return web.json_response(stored_to_json(stored), headers={"X-Homeserver-Worker": worker})

    app = web.Application(middlewares=[authenticated], client_max_size=_MAX_BODY)
    app.router.add_post(f"{INTERNAL_PREFIX}/send_event", send_event)
    return app
