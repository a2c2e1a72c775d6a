"""Display names, avatars and extended profile fields of local users."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.errors import MatrixError, forbidden, not_found
from homeserver.rooms.remote import RemoteQueries
from storage.users import UserStore

MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000
MAX_KEY_BYTES = 255
MAX_PROFILE_BYTES = 65536
# The keys that member events carry: changing one is announced to listeners.
MEMBER_EVENT_KEYS = ("displayname", "avatar_url")

# Called with the user id after their display name or avatar changed.
ProfileListener = Callable[[str], Awaitable[None]]


class ProfileService:
    def __init__(
        self,
        users: UserStore,
        *,
        server_name: str = "",
        remote: RemoteQueries | None = None,
        unknown_user: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._users = users
        # Asks the appservices owning an unknown user (they create it on demand).
        self._unknown_user = unknown_user
        self._listeners: list[ProfileListener] = []
        self._server_name = server_name
        # Other servers' users' profiles; None when this server does not federate.
        self._remote = remote

    def add_listener(self, listener: ProfileListener) -> None:
        """Call `listener(user_id)` after each change of a display name or avatar."""
        self._listeners.append(listener)

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """The whole profile as the client API shows it; 404 for unknown users."""
        user = await self._users.get_user(user_id)
        if user is None and self._unknown_user is not None and await self._unknown_user(user_id):
            user = await self._users.get_user(user_id)
        profile = await self._users.get_profile(user_id) if user else None
        if profile is None or (user is not None and user.deactivated):
            raise not_found("Profile was not found")
        result: dict[str, Any] = dict(profile.fields)
        if profile.displayname is not None:
            result["displayname"] = profile.displayname
        if profile.avatar_url is not None:
            result["avatar_url"] = profile.avatar_url
        return result

    async def lookup(self, user_id: str, key: str | None = None) -> dict[str, Any]:
        """Anyone's profile (or one key of it), as the client API shows it:
        another server's users are asked of their server."""
        if self._remote is not None and user_id.partition(":")[2] != self._server_name:
            return await self._remote.profile(user_id, key)
        if key is None:
            return await self.get_profile(user_id)
        return {key: await self.get_field(user_id, key)}

    async def get_field(self, user_id: str, key: str) -> Any:
        """One key of a profile. An unset display name or avatar is null, not
        404 (as Synapse): clients read those of every user, set or not."""
        profile = await self.get_profile(user_id)
        if key in MEMBER_EVENT_KEYS:
            return profile.get(key)
        if key not in profile:
            raise not_found(f"The profile has no {key!r}")
        return profile[key]

    async def set_field(self, requester_id: str, user_id: str, key: str, value: Any) -> None:
        """Set (or with None, remove) a key of one's own profile."""
        if requester_id != user_id:
            raise forbidden("Cannot change another user's profile")
        _check_field(key, value)
        profile = await self.get_profile(user_id)
        new_profile = {**profile, key: value}
        if len(json.dumps(new_profile).encode()) > MAX_PROFILE_BYTES:
            raise MatrixError(400, "M_PROFILE_TOO_LARGE", "The profile would be too large")
        await self._users.set_profile_field(user_id, key, value)
        if key in MEMBER_EVENT_KEYS:
            for listener in self._listeners:
                await listener(user_id)


def _check_field(key: str, value: Any) -> None:
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise MatrixError(400, "M_KEY_TOO_LARGE", "Profile keys are 1 to 255 bytes")
    if key == "displayname":
        if value is not None and not isinstance(value, str):
            raise MatrixError(400, "M_BAD_JSON", "'displayname' must be a string")
        if value is not None and len(value) > MAX_DISPLAYNAME_LENGTH:
            raise MatrixError(400, "M_TOO_LARGE", "The display name is too long")
    elif key == "avatar_url":
        if value is not None and not isinstance(value, str):
            raise MatrixError(400, "M_BAD_JSON", "'avatar_url' must be a string")
        if value is not None and len(value) > MAX_AVATAR_URL_LENGTH:
            raise MatrixError(400, "M_TOO_LARGE", "The avatar URL is too long")
    elif key == "m.tz" and value is not None and not isinstance(value, str):
        raise MatrixError(400, "M_BAD_JSON", "'m.tz' must be a string")
