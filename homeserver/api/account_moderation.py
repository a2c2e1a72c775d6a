"""Account locking and suspension by server admins: the spec's
`/_matrix/client/v1/admin/{lock,suspend}/{userId}` (v1.18, MSC4323, also
under MSC4323's unstable prefix, which moderation bots such as Draupnir and
Meowlnir call), and Synapse's `PUT /_synapse/admin/v1/suspend/{userId}`.

The Router checks that the caller is a server admin before anything is
looked up (403 M_FORBIDDEN otherwise), as the spec asks against enumeration,
and writes every change to the admin audit log.
"""

from __future__ import annotations

from typing import Any

from homeserver.admin.account_moderation import AccountModeration, Flag
from homeserver.api.http import ClientRequest, admin_endpoint, endpoint
from homeserver.errors import bad_json, missing_param

_PREFIXES = ("/_matrix/client/v1", "/_matrix/client/unstable/uk.timedout.msc4323")


def _flag_value(req: ClientRequest, key: str) -> bool:
    body = req.json()
    if key not in body:
        raise missing_param(f"'{key}' is required")
    if not isinstance(body[key], bool):
        raise bad_json(f"'{key}' must be true or false")
    return body[key]


class AccountModerationApi:
    def __init__(self, moderation: AccountModeration) -> None:
        self._moderation = moderation

    async def _get(self, req: ClientRequest, flag: Flag) -> dict[str, Any]:
        return {flag: await self._moderation.status(req.user, req.params["userId"], flag)}

    async def _put(self, req: ClientRequest, flag: Flag) -> dict[str, Any]:
        value = _flag_value(req, flag)
        return {
            flag: await self._moderation.set_status(req.user, req.params["userId"], flag, value)
        }

    @endpoint("GET", "/admin/suspend/{userId}", prefixes=_PREFIXES, admin=True)
    async def get_suspended(self, req: ClientRequest) -> dict[str, Any]:
        return await self._get(req, "suspended")

    @endpoint(
        "PUT",
        "/admin/suspend/{userId}",
        prefixes=_PREFIXES,
        admin=True,
        audit_action="user.suspend",
    )
    async def put_suspended(self, req: ClientRequest) -> dict[str, Any]:
        return await self._put(req, "suspended")

    @endpoint("GET", "/admin/lock/{userId}", prefixes=_PREFIXES, admin=True)
    async def get_locked(self, req: ClientRequest) -> dict[str, Any]:
        return await self._get(req, "locked")

    @endpoint(
        "PUT", "/admin/lock/{userId}", prefixes=_PREFIXES, admin=True, audit_action="user.lock"
    )
    async def put_locked(self, req: ClientRequest) -> dict[str, Any]:
        return await self._put(req, "locked")

    @admin_endpoint("PUT", "/v1/suspend/{userId}", action="user.suspend")
    async def synapse_suspend(self, req: ClientRequest) -> dict[str, Any]:
        """Synapse's form: `{"suspend": bool}` in, `{"user_<id>_suspended": bool}` out."""
        user_id = req.params["userId"]
        suspend = _flag_value(req, "suspend")
        await self._moderation.admin_api_suspend(user_id, suspend)
        return {f"user_{user_id}_suspended": suspend}
