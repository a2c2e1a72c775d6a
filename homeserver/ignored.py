"""Ignored users: the m.ignored_user_list global account data of a user.

The server leaves out the non-state events of ignored users from /sync
timelines and /messages, and their invites from /sync; state events still
reach the client (the spec's rule: a room must not look different because
one of its members is ignored).

The list is read with one query and kept in memory (for `MAX_USERS` users)
until AccountDataService reports a write of it (`account_data_changed`): the
thousand long polls one message wakes then ask nothing.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from homeserver.cluster.invalidation import CacheInvalidations
from storage.account_data import AccountDataStore

IGNORED_USER_LIST = "m.ignored_user_list"
# Users whose list is kept (least recently asked dropped first).
MAX_USERS = 10_000
# The lists' name among the caches shared by a deployment.
_IGNORED_SHARED = "ignored_users"


def _parse(content_json: str | None, user_id: str) -> frozenset[str]:
    """The user ids of a well-formed list; anything else ignores nobody.
    Nobody can ignore themselves."""
    if content_json is None:
        return frozenset()
    ignored = json.loads(content_json).get("ignored_users")
    if not isinstance(ignored, dict):
        return frozenset()
    return frozenset(u for u in ignored if isinstance(u, str) and u != user_id)


class IgnoredUsers:
    def __init__(self, store: AccountDataStore) -> None:
        self._store = store
        self._known: OrderedDict[str, frozenset[str]] = OrderedDict()
        # Bumped by every write of a list: a read that overlapped one is not kept.
        self._writes = 0
        self._shared: CacheInvalidations | None = None

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a list written through one
        is obeyed by all (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register(_IGNORED_SHARED, self._forget, self._forget_all)

    def account_data_changed(
        self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]
    ) -> None:
        """An AccountDataService listener: forget a list written."""
        if not room_id and data_type == IGNORED_USER_LIST:
            if self._shared is not None:
                self._shared.forget(_IGNORED_SHARED, user_id)
            else:
                self._forget(user_id)

    def _forget(self, user_id: str) -> None:
        self._writes += 1
        self._known.pop(user_id, None)

    def _forget_all(self) -> None:
        self._writes += 1
        self._known.clear()

    async def ignored_users(self, user_id: str) -> frozenset[str]:
        cached = self._known.pop(user_id, None)
        if cached is None:
            writes = self._writes
            cached = _parse(await self._store.get(user_id, "", IGNORED_USER_LIST), user_id)
            if writes != self._writes:
                return cached
        self._known[user_id] = cached
        if len(self._known) > MAX_USERS:
            self._known.popitem(last=False)
        return cached
