"""Ignored users: the m.ignored_user_list global account data of a user.

The server leaves out the non-state events of ignored users from /sync
timelines and /messages, and their invites from /sync; state events still
reach the client (the spec's rule: a room must not look different because
one of its members is ignored).

The list is read with one query and kept for the rest of the request (a
context variable: each HTTP request runs in its own task), keyed by the
account data stream position, so a long-polling /sync that rebuilds its
response after the list changed reads it again.
"""

from __future__ import annotations

import contextvars
import json

from homeserver.notifier import Notifier
from storage.account_data import AccountDataStore

IGNORED_USER_LIST = "m.ignored_user_list"

# {user id: (account data position when read, the ignored users)} for this request.
_request_cache: contextvars.ContextVar[dict[str, tuple[int, frozenset[str]]] | None] = (
    contextvars.ContextVar("ignored_users", default=None)
)


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
    def __init__(self, store: AccountDataStore, notifier: Notifier) -> None:
        self._store = store
        self._notifier = notifier

    async def ignored_users(self, user_id: str) -> frozenset[str]:
        cache = _request_cache.get()
        if cache is None:
            cache = {}
            _request_cache.set(cache)
        position = self._notifier.positions.get("account_data", 0)
        cached = cache.get(user_id)
        if cached is not None and cached[0] == position:
            return cached[1]
        ignored = _parse(await self._store.get(user_id, "", IGNORED_USER_LIST), user_id)
        cache[user_id] = (position, ignored)
        return ignored
