"""Pushers: where a user's notifications are pushed (spec: client-server API,
"Push Notifications", GET /pushers and POST /pushers/set).

Only HTTP pushers are kept: this server sends no email. A pusher belongs to
the device whose access token set it and is removed with that device (a
foreign key in the schema). The pushes themselves are sent by sender.py.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from homeserver.errors import invalid_param, missing_param
from homeserver.requester import Requester
from storage.pushers import Pusher, PusherStore

HTTP: Final = "http"
EMAIL: Final = "email"
# The one path a push gateway's URL may have.
NOTIFY_PATH: Final = "/_matrix/push/v1/notify"
# data.format asking for pushes without the event's details.
EVENT_ID_ONLY: Final = "event_id_only"
MAX_PUSHKEY_BYTES: Final = 512
MAX_APP_ID_CHARS: Final = 64


def _now_ms() -> int:
    return int(time.time() * 1000)


@attrs.frozen
class PusherSettings:
    """A POST /pushers/set body that creates or updates a pusher."""

    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: Mapping[str, Any]
    append: bool


def pusher_json(pusher: Pusher) -> dict[str, Any]:
    """A pusher as GET /pushers lists it."""
    body: dict[str, Any] = {
        "pushkey": pusher.pushkey,
        "kind": pusher.kind,
        "app_id": pusher.app_id,
        "app_display_name": pusher.app_display_name,
        "device_display_name": pusher.device_display_name,
        "lang": pusher.lang,
        "data": dict(pusher.data),
    }
    if pusher.profile_tag is not None:
        body["profile_tag"] = pusher.profile_tag
    return body


def _check_http_data(data: Mapping[str, Any]) -> None:
    """An HTTP pusher's data: a URL with the notify path (as Synapse requires;
    http is allowed besides the spec's https, for gateways on a private
    network), and a string format if any. Formats other than event_id_only
    get the full payload, as in Synapse."""
    if "url" not in data:
        raise missing_param("'data.url' is required for HTTP pushers")
    url = data["url"]
    if not isinstance(url, str):
        raise invalid_param("'data.url' must be a string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_param("'data.url' must be an http or https URL")
    if parts.path != NOTIFY_PATH:
        raise invalid_param(f"'data.url' must have the path {NOTIFY_PATH}")
    if "format" in data and not isinstance(data["format"], str):
        raise invalid_param("'data.format' must be a string")


class PusherService:
    def __init__(self, store: PusherStore, *, clock: Callable[[], int] = _now_ms) -> None:
        self._store = store
        self._clock = clock

    async def pushers(self, user_id: str) -> list[dict[str, Any]]:
        return [pusher_json(p) for p in await self._store.for_user(user_id)]

    async def set_pusher(self, requester: Requester, settings: PusherSettings) -> None:
        """Create or update the user's pusher for (app_id, pushkey); without
        `append`, other users' pushers for the same pair are removed."""
        if settings.kind == EMAIL:
            raise invalid_param("Email pushers are not supported by this server")
        if settings.kind != HTTP:
            raise invalid_param(f"Unknown pusher kind {settings.kind!r}")
        if len(settings.app_id) > MAX_APP_ID_CHARS:
            raise invalid_param(f"'app_id' is longer than {MAX_APP_ID_CHARS} characters")
        if len(settings.pushkey.encode()) > MAX_PUSHKEY_BYTES:
            raise invalid_param(f"'pushkey' is longer than {MAX_PUSHKEY_BYTES} bytes")
        _check_http_data(settings.data)
        await self._store.put(
            Pusher(
                requester.user_id,
                settings.app_id,
                settings.pushkey,
                requester.device_id,
                settings.kind,
                settings.app_display_name,
                settings.device_display_name,
                settings.profile_tag,
                settings.lang,
                settings.data,
                self._clock(),
            ),
            remove_others=not settings.append,
        )

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> None:
        """Kind null: remove the user's pusher; removing none is no error (Synapse)."""
        await self._store.delete(user_id, app_id, pushkey)
