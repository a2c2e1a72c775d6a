"""The user directory: finding people to invite or message by name or user id.

Who can be found (as Synapse): users who share a joined room with the
searcher, users joined to a public room (join rule public or history
world_readable), and, when `search_all_users` is set, every local user
except the searcher. Deactivated, locked and support users never are.

Nothing is copied out of profiles, so a display name is searchable from the
moment it is set and not a moment before. The one derived fact, who is joined
to a public room, is recomputed by the pipeline's commit hook after each
member, join rules or history visibility event.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from homeserver.events.event import Event
from storage.user_directory import DirectoryQuery, UserDirectoryStore

logger = logging.getLogger(__name__)

# Words of a search term considered (Synapse's cap too).
MAX_WORDS = 10
# The state events that make a room's members findable by everyone.
_PUBLICNESS_TYPES = ("m.room.join_rules", "m.room.history_visibility")
# A user id's sigil and separator split words too: "@ali:exa" is 'ali' and 'exa'.
_WORD_SEPARATORS = re.compile(r"[\s@:]+")


def parse_search_term(term: str) -> DirectoryQuery | None:
    """The term as prefix and exact text-search queries; None if it has no words.

    Each word is quoted for `to_tsquery`, so PostgreSQL's own parser splits
    it the way it split the indexed names ('bob_sm' finds 'bob_smith').
    """
    lowered = term.strip().lower()
    words = [w for w in _WORD_SEPARATORS.split(lowered) if re.search(r"[^\W_]", w)]
    if not words:
        return None
    quoted = ["'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words[:MAX_WORDS]]
    return DirectoryQuery(
        prefix=" & ".join(f"{q}:*" for q in quoted),
        exact=" & ".join(quoted),
        term=lowered.removeprefix("@"),
    )


class UserDirectory:
    def __init__(self, store: UserDirectoryStore, *, search_all_users: bool) -> None:
        self._store = store
        self._search_all_users = search_all_users

    async def search(self, searcher: str, term: str, limit: int) -> dict[str, Any]:
        """The client API's search response: best matches first, `limited` if more."""
        query = parse_search_term(term)
        if query is None:
            return {"results": [], "limited": False}
        entries = await self._store.search(
            searcher, query, limit + 1, search_all_users=self._search_all_users
        )
        results = []
        for entry in entries[:limit]:
            result: dict[str, Any] = {"user_id": entry.user_id}
            if entry.display_name is not None:
                result["display_name"] = entry.display_name
            if entry.avatar_url is not None:
                result["avatar_url"] = entry.avatar_url
            results.append(result)
        return {"results": results, "limited": len(entries) > limit}

    async def on_commit(self, event: Event, stream_ordering: int) -> None:
        """Pipeline commit hook: keep the members of public rooms current.

        A member event changes whether its user is in the room; a join rules
        or history visibility event may make the whole room public, or not.
        """
        try:
            if event.type == "m.room.member" and event.state_key is not None:
                await self._store.refresh_member(event.room_id, event.state_key)
            elif event.type in _PUBLICNESS_TYPES and event.state_key == "":
                await self._store.refresh_room(event.room_id)
        except Exception:
            logger.exception("updating the user directory for %s failed", event.event_id)
