"""Profiles: display name, avatar and extended fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.accounts.suspension import refuse_if_suspended
from homeserver.api.http import ClientRequest, endpoint
from homeserver.errors import bad_json, missing_param
from homeserver.profile import ProfileService


def _display_name_only(params: Mapping[str, str]) -> bool:
    """Guests may set their display name and nothing else of their profile."""
    return params.get("keyName") == "displayname"


class ProfileApi:
    def __init__(self, profiles: ProfileService) -> None:
        self._profiles = profiles

    @endpoint("GET", "/profile/{userId}", auth=False)
    async def get_profile(self, req: ClientRequest) -> dict[str, Any]:
        return await self._profiles.lookup(req.params["userId"])

    @endpoint("GET", "/profile/{userId}/{keyName}", auth=False)
    async def get_field(self, req: ClientRequest) -> dict[str, Any]:
        return await self._profiles.lookup(req.params["userId"], req.params["keyName"])

    @endpoint("PUT", "/profile/{userId}/{keyName}", guest_ok=_display_name_only)
    async def set_field(self, req: ClientRequest) -> dict[str, Any]:
        key = req.params["keyName"]
        body = req.json()
        if key not in body:
            raise missing_param(f"The body must hold {key!r}")
        if len(body) != 1:
            raise bad_json(f"The body must hold only {key!r}")
        refuse_if_suspended(req.user, "Changing the profile")
        await self._profiles.set_field(req.user.user_id, req.params["userId"], key, body[key])
        return {}

    @endpoint("DELETE", "/profile/{userId}/{keyName}", guest_ok=_display_name_only)
    async def delete_field(self, req: ClientRequest) -> dict[str, Any]:
        refuse_if_suspended(req.user, "Changing the profile")
        await self._profiles.set_field(
            req.user.user_id, req.params["userId"], req.params["keyName"], None
        )
        return {}
