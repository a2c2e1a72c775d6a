"""Invite blocking (MSC4380, spec v1.18 "Invite permission").

A user whose `m.invite_permission_config` global account data says
`"default_action": "block"` receives no invites: local invites and those
arriving over federation are refused with 403 `M_INVITE_BLOCKED`, and invites
already stored are left out of /sync and sliding sync (they come back on a
full sync once the user stops blocking, as the spec allows). Anything else in
the content, including its absence, means invites as usual. The MSC's
unstable type `org.matrix.msc4380.invite_permission_config` counts when the
stable one is absent (the stable one wins, as in Synapse).

Every /sync asks, so the answer costs no query: the settings are read once at
start-up (few rows, through a partial index) and kept up to date by
AccountDataService, which tells this object of every write. Like the other
in-memory state of docs/architecture.md's "still single-process", a second
process would not hear of another's writes.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.errors import MatrixError
from storage.invite_permission import InvitePermissionStore

INVITE_PERMISSION_CONFIG = "m.invite_permission_config"
UNSTABLE_INVITE_PERMISSION_CONFIG = "org.matrix.msc4380.invite_permission_config"
INVITE_BLOCKED = "M_INVITE_BLOCKED"
# The settings' name among the mirrors shared by a deployment.
_SETTINGS_SHARED = "invite_permission"


class InviteBlocking(Protocol):
    """What /sync and sliding sync ask (InvitePermission answers)."""

    async def blocks_invites(self, user_id: str) -> bool: ...


def invite_blocked(user_id: str) -> MatrixError:
    return MatrixError(403, INVITE_BLOCKED, f"{user_id} does not accept invites")


def _blocks(content: Any) -> bool:
    return isinstance(content, dict) and content.get("default_action") == "block"


class InvitePermission:
    def __init__(self, store: InvitePermissionStore) -> None:
        self._store = store
        # Users with a stable setting, and whether it blocks.
        self._stable: dict[str, bool] = {}
        # Users whose unstable setting blocks.
        self._unstable: set[str] = set()
        self._shared: CacheInvalidations | None = None

    async def start(self) -> None:
        settings = await self._store.all_settings()
        self._stable.clear()
        self._unstable.clear()
        for user_id, data_type, content in settings:
            self._remember(user_id, data_type, json.loads(content))

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a setting written through one
        is obeyed by all (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register_mirror(_SETTINGS_SHARED, self._reload, self.start)

    async def _reload(self, user_id: str) -> None:
        settings = await self._store.all_settings(user_id)
        self._stable.pop(user_id, None)
        self._unstable.discard(user_id)
        for _, data_type, content in settings:
            self._remember(user_id, data_type, json.loads(content))

    def _remember(self, user_id: str, data_type: str, content: Any) -> None:
        if data_type == INVITE_PERMISSION_CONFIG:
            self._stable[user_id] = _blocks(content)
        elif _blocks(content):
            self._unstable.add(user_id)
        else:
            self._unstable.discard(user_id)

    async def blocks_invites(self, user_id: str) -> bool:
        """Whether `user_id` (a local user) refuses every invite."""
        stable = self._stable.get(user_id)
        return stable if stable is not None else user_id in self._unstable

    async def check_invite(self, invitee: str) -> None:
        """403 M_INVITE_BLOCKED if `invitee` blocks invites."""
        if await self.blocks_invites(invitee):
            raise invite_blocked(invitee)

    def account_data_changed(
        self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> None:
        """Keep up with a write of the user's account data."""
        if room_id == "" and data_type in (
            INVITE_PERMISSION_CONFIG,
            UNSTABLE_INVITE_PERMISSION_CONFIG,
        ):
            self._remember(user_id, data_type, content)
            if self._shared is not None:
                self._shared.tell_others(_SETTINGS_SHARED, user_id)
