"""Who may use the admin API, and the audit log of what admins changed.

The Router calls this once for every admin endpoint, so no handler can forget
the admin check or the audit entry.
"""

from __future__ import annotations

import json
from typing import Any

from homeserver.api.http import ClientRequest
from homeserver.errors import forbidden
from homeserver.requester import Requester
from storage.admin_audit import AuditEntry, AuditStore
from storage.users import UserStore

# Never written to the audit log, wherever they appear in a request.
SECRET_KEYS = frozenset(
    {"password", "new_password", "mac", "access_token", "refresh_token", "auth", "token_secret"}
)
# Path parameters naming what an action is about, most specific first.
_TARGET_PARAMS = ("userId", "roomId", "roomIdOrAlias", "reportId", "deleteId", "purgeId")
# Response and body keys naming it when the path does not (creations, notices).
_TARGET_KEYS = ("user_id", "token", "room_id")


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _request_params(request: ClientRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if request.query:
        params["query"] = {k: request.query.getall(k) for k in request.query}
    if request.body.strip():
        try:
            params["body"] = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            params["body"] = "<not JSON>"
    return _without_secrets(params)


def _target(request: ClientRequest, body: dict[str, Any], result: Any) -> str | None:
    p = request.params
    if "mediaId" in p:
        return f"mxc://{p['serverName']}/{p['mediaId']}" if "serverName" in p else p["mediaId"]
    if "token" in p:
        return p["token"]
    for key in _TARGET_PARAMS:
        if key in p:
            return p[key]
    for source in (result, body):
        if isinstance(source, dict):
            for key in _TARGET_KEYS:
                if isinstance(source.get(key), str):
                    return source[key]
    return None


class AdminGate:
    def __init__(self, users: UserStore, audit: AuditStore) -> None:
        self._users = users
        self._audit = audit

    async def require_admin(self, requester: Requester) -> None:
        user = await self._users.get_user(requester.user_id)
        if user is None or not user.admin:
            raise forbidden("You are not a server admin")

    async def record(
        self,
        request: ClientRequest,
        action: str,
        result: Any,
        status: int,
        errcode: str | None,
    ) -> None:
        params = _request_params(request)
        body = params.get("body")
        await self._audit.append(
            AuditEntry(
                admin_user_id=request.requester.user_id if request.requester else None,
                ip=request.ip,
                action=action,
                method=request.method,
                path=request.path,
                target=_target(request, body if isinstance(body, dict) else {}, result),
                params=params,
                status=status,
                errcode=errcode,
            )
        )
