"""The /sync response as providers build it, and what counts as empty."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from homeserver.requester import Requester
from homeserver.sync.token import SyncToken


class RoomsOfUser(Protocol):
    async def rooms_for_user(self, user_id: str, membership: str = "join") -> list[str]: ...


@attrs.frozen
class SyncRequest:
    requester: Requester
    # None for an initial sync.
    since: SyncToken | None
    # Where this response ends: the next_batch token.
    now: SyncToken
    # The filter definition (already validated), {} for none.
    filter: dict[str, Any]
    full_state: bool
    set_presence: str
    # The rooms to report ephemeral events, room account data and presence
    # for instead of the user's joined rooms: the room of a legacy /events
    # peek or of a room initialSync, which the user need not have joined.
    peek_rooms: tuple[str, ...] | None = None
    # MSC4222: the key (stable `state_after` or the unstable name the client
    # asked by) under which rooms carry the state at the END of their
    # timeline instead of `state`; None for the classic `state`.
    state_after: str | None = None
    # The streams (and stream_moves.MEMBERS) that may hold news for this
    # user in (since, now], as the notifier's record of recent moves tells:
    # a provider may skip its queries for a stream not in it. None when
    # nothing is known (initial syncs, peeks, the legacy APIs).
    moved: frozenset[str] | None = None

    @property
    def user_id(self) -> str:
        return self.requester.user_id

    async def rooms(self, joined: RoomsOfUser) -> list[str]:
        """The rooms this response reports: `peek_rooms`, or the user's joined rooms."""
        if self.peek_rooms is not None:
            return list(self.peek_rooms)
        return await joined.rooms_for_user(self.user_id)

    def quiet(self, *streams: str) -> bool:
        """Whether none of these streams moved for this user in the range
        (known from the record of recent moves; False when unknown)."""
        return self.moved is not None and self.moved.isdisjoint(streams)

    def since_position(self, stream: str) -> int:
        return self.since[stream] if self.since is not None else 0


def room_entry(response: dict[str, Any], section: str, room_id: str) -> dict[str, Any]:
    """response["rooms"][section][room_id], created on first use."""
    return response.setdefault("rooms", {}).setdefault(section, {}).setdefault(room_id, {})


def has_news(value: Any) -> bool:
    """Whether a response holds anything a client has not seen.

    Unread counts and one-time key counts are repeated in every response,
    so they alone are no reason to return a long poll early.
    """
    if isinstance(value, dict):
        return any(
            has_news(v)
            for k, v in value.items()
            if k
            not in (
                "next_batch",
                "unread_notifications",
                "unread_thread_notifications",
                "device_one_time_keys_count",
                "device_unused_fallback_key_types",
                "summary",
                "limited",
                "prev_batch",
            )
        )
    if isinstance(value, list):
        return bool(value)
    return value is not None and value is not False
