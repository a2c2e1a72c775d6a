"""Rooms' retention policies (MSC1763's m.room.retention), kept in memory.

Every read path that hides expired history (through HistoryVisibility) asks
here, so the policies are loaded once at start-up and refreshed by a
pipeline commit hook when a room's m.room.retention changes: no request
pays a query for them. As in Synapse, a room without a policy has the
configured default, a policy leaving out `max_lifetime` or `min_lifetime`
takes the default's, and the configured bounds clamp the result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.config import RetentionConfig
from homeserver.errors import bad_json
from homeserver.events.event import Event
from storage.retention import RETENTION_TYPE, RetentionStore

# The policies' name among the mirrors shared by a deployment.
_POLICIES_SHARED = "retention_policies"

logger = logging.getLogger(__name__)


@attrs.frozen
class RetentionPolicy:
    min_lifetime: int | None = None
    max_lifetime: int | None = None


def _lifetime(content: Mapping[str, Any], key: str) -> int | None:
    """A lifetime of the content: a positive integer, or None (absent or invalid)."""
    value = content.get(key)
    if type(value) is not int or value <= 0:
        return None
    return value


def check_policy_content(content: Mapping[str, Any]) -> None:
    """Refuse (400 M_BAD_JSON) an m.room.retention a local user sends whose
    lifetimes are not integers or are in the wrong order, as Synapse does."""
    for key in ("min_lifetime", "max_lifetime"):
        value = content.get(key)
        if value is not None and type(value) is not int:
            raise bad_json(f"'{key}' must be an integer")
    low, high = content.get("min_lifetime"), content.get("max_lifetime")
    if low is not None and high is not None and low > high:
        raise bad_json("'min_lifetime' can't be greater than 'max_lifetime'")


def parse_policy(content: Mapping[str, Any]) -> RetentionPolicy:
    return RetentionPolicy(_lifetime(content, "min_lifetime"), _lifetime(content, "max_lifetime"))


class RetentionPolicies:
    def __init__(self, store: RetentionStore, config: RetentionConfig) -> None:
        self._store = store
        self._config = config
        self._default = RetentionPolicy(
            config.default_policy.min_lifetime_ms, config.default_policy.max_lifetime_ms
        )
        # Room id -> the policy its m.room.retention states.
        self._rooms: dict[str, RetentionPolicy] = {}
        self._shared: CacheInvalidations | None = None

    async def load(self) -> None:
        self._rooms = {r: parse_policy(c) for r, c in (await self._store.room_policies()).items()}

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: re-read a room's policy when its m.room.retention
        may have changed (from the current state, which resolution decides)."""
        if event.type != RETENTION_TYPE or event.state_key != "":
            return
        try:
            found = await self._store.room_policies(event.room_id)
        except Exception:
            # The event is committed already; the next start-up reads the policy.
            logger.exception("reading the retention policy of %s failed", event.room_id)
            return
        self._set(event.room_id, found)
        if self._shared is not None:
            self._shared.tell_others(_POLICIES_SHARED, event.room_id)

    def _set(self, room_id: str, found: dict[str, dict[str, Any]]) -> None:
        if room_id in found:
            self._rooms[room_id] = parse_policy(found[room_id])
        else:
            self._rooms.pop(room_id, None)

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a policy event persisted by
        one is known to all (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register_mirror(_POLICIES_SHARED, self._reload, self.load)

    async def _reload(self, room_id: str) -> None:
        self._set(room_id, await self._store.room_policies(room_id))

    def clamp(self, max_lifetime: int | None) -> int | None:
        """A max_lifetime within the configured allowed bounds."""
        if max_lifetime is None:
            return None
        low, high = self._config.allowed_lifetime_min_ms, self._config.allowed_lifetime_max_ms
        if high is not None and max_lifetime > high:
            max_lifetime = high
        if low is not None and max_lifetime < low:
            max_lifetime = low
        return max_lifetime

    def policy(self, room_id: str) -> RetentionPolicy:
        """The room's effective policy: its own, completed by the default, clamped."""
        own = self._rooms.get(room_id, self._default)
        max_lifetime = (
            own.max_lifetime if own.max_lifetime is not None else self._default.max_lifetime
        )
        min_lifetime = (
            own.min_lifetime if own.min_lifetime is not None else self._default.min_lifetime
        )
        return RetentionPolicy(min_lifetime, self.clamp(max_lifetime))

    def cutoff(self, room_id: str, now: int) -> int | None:
        """Events of the room sent before this timestamp have expired (None: never)."""
        max_lifetime = self.policy(room_id).max_lifetime
        return None if max_lifetime is None else now - max_lifetime

    def room_cutoffs(self, now: int) -> tuple[list[tuple[str, int | None]], int | None]:
        """(cutoff of each room with a policy of its own, the other rooms' cutoff)."""
        default = self.clamp(self._default.max_lifetime)
        return (
            [(room_id, self.cutoff(room_id, now)) for room_id in self._rooms],
            None if default is None else now - default,
        )
