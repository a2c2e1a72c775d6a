"""Invite blocking (MSC4380, spec v1.18 "Invite permission").

A user whose `m.invite_permission_config` global account data says
`"default_action": "block"` receives no invites: local invites and those
arriving over federation are refused with 403 `M_INVITE_BLOCKED`, and invites
already stored are left out of /sync and sliding sync (they come back if the
user stops blocking, as the spec allows). Anything else in the content,
including its absence, means invites as usual. The MSC's unstable type
`org.matrix.msc4380.invite_permission_config` is read when the stable one is
absent (the stable one wins, as Synapse's MSC4380-over-MSC4155 precedence).

Every /sync asks, so the answer is kept in memory per user and dropped when
the user's account data changes (AccountDataService tells this object); a
generation number keeps a read that raced with a change from caching the old
answer.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Protocol

from homeserver.errors import MatrixError
from storage.account_data import AccountDataStore

INVITE_PERMISSION_CONFIG = "m.invite_permission_config"
UNSTABLE_INVITE_PERMISSION_CONFIG = "org.matrix.msc4380.invite_permission_config"
_TYPES = (INVITE_PERMISSION_CONFIG, UNSTABLE_INVITE_PERMISSION_CONFIG)
INVITE_BLOCKED = "M_INVITE_BLOCKED"
_CACHE_SIZE = 100_000


class InviteBlocking(Protocol):
    """What /sync and sliding sync ask (InvitePermission answers)."""

    async def blocks_invites(self, user_id: str) -> bool: ...


def invite_blocked(user_id: str) -> MatrixError:
    return MatrixError(403, INVITE_BLOCKED, f"{user_id} does not accept invites")


def _blocks(content_json: str | None) -> bool:
    if content_json is None:
        return False
    content = json.loads(content_json)
    return isinstance(content, dict) and content.get("default_action") == "block"


class InvitePermission:
    def __init__(self, store: AccountDataStore) -> None:
        self._store = store
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._generation = 0

    async def blocks_invites(self, user_id: str) -> bool:
        """Whether `user_id` (a local user) refuses every invite."""
        cached = self._cache.get(user_id)
        if cached is not None:
            self._cache.move_to_end(user_id)
            return cached
        generation = self._generation
        blocks = False
        for data_type in _TYPES:
            content = await self._store.get(user_id, "", data_type)
            if content is not None:
                blocks = _blocks(content)
                break
        if generation == self._generation:
            self._cache[user_id] = blocks
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return blocks

    async def check_invite(self, invitee: str) -> None:
        """403 M_INVITE_BLOCKED if `invitee` blocks invites."""
        if await self.blocks_invites(invitee):
            raise invite_blocked(invitee)

    def account_data_changed(self, user_id: str, room_id: str, data_type: str) -> None:
        """Forget the answer when the user's config changes."""
        if room_id == "" and data_type in _TYPES:
            self._generation += 1
            self._cache.pop(user_id, None)
