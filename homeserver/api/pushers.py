"""Pushers and the notification list: GET /pushers, POST /pushers/set,
GET /notifications (spec: client-server API, "Push Notifications")."""

from __future__ import annotations

from typing import Any

from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import invalid_param, missing_param
from homeserver.push.notification_list import NotificationList
from homeserver.push.pushers import PusherService, PusherSettings

DEFAULT_LIMIT = 50
# Required unless kind is null (deletion needs app_id and pushkey only).
_REQUIRED = ("app_display_name", "device_display_name", "lang", "data")


def _string(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise invalid_param(f"'{key}' must be a string")
    return value


def _query_int(value: str | None, name: str) -> int | None:
    """A non-negative integer query parameter, None if absent."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise invalid_param(f"'{name}' must be an integer") from None
    if number < 0:
        raise invalid_param(f"'{name}' must not be negative")
    if number >= 2**63:
        raise invalid_param(f"'{name}' is out of range")
    return number


class PushersApi:
    def __init__(self, pushers: PusherService, notifications: NotificationList) -> None:
        self._pushers = pushers
        self._notifications = notifications

    @endpoint("GET", "/pushers")
    async def get_pushers(self, req: ClientRequest) -> dict[str, Any]:
        return {"pushers": await self._pushers.pushers(req.user.user_id)}

    @endpoint("POST", "/pushers/set")
    async def set_pusher(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        deleting = "kind" in body and body["kind"] is None
        required = ("kind", "app_id", "pushkey") + (() if deleting else _REQUIRED)
        missing = [key for key in required if key not in body]
        if missing:
            raise missing_param(f"Missing parameters: {', '.join(missing)}")
        app_id, pushkey = _string(body, "app_id"), _string(body, "pushkey")
        if deleting:
            await self._pushers.delete_pusher(req.user.user_id, app_id, pushkey)
            return {}
        data = body["data"]
        if not isinstance(data, dict):
            raise invalid_param("'data' must be an object")
        profile_tag = body.get("profile_tag")
        if profile_tag is not None and not isinstance(profile_tag, str):
            raise invalid_param("'profile_tag' must be a string")
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise invalid_param("'append' must be true or false")
        await self._pushers.set_pusher(
            req.user,
            PusherSettings(
                app_id=app_id,
                pushkey=pushkey,
                kind=_string(body, "kind"),
                app_display_name=_string(body, "app_display_name"),
                device_display_name=_string(body, "device_display_name"),
                profile_tag=profile_tag,
                lang=_string(body, "lang"),
                data=data,
                append=append,
            ),
        )
        return {}

    @endpoint("GET", "/notifications")
    async def notifications(self, req: ClientRequest) -> dict[str, Any]:
        before = _query_int(req.query.get("from"), "from")
        limit = _query_int(req.query.get("limit"), "limit")
        return await self._notifications.page(
            req.user,
            before,
            DEFAULT_LIMIT if limit is None else limit,
            only_highlight=req.query.get("only") == "highlight",
        )
