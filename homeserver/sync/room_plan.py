"""Which rooms a sync reports, in which section, over which range of events.

Decided from the user's memberships alone (storage/sync.py `memberships`),
following Synapse:

- joined rooms: every one on an initial or full_state sync; on an
  incremental sync those with events in (since, now]. A room the user
  joined in the range (or left and joined again) is reported as on an
  initial sync: its newest events whatever `since` says, and its full state.
- invited and knocked rooms: when the invite or knock is in the range (all
  of them on an initial sync).
- left rooms: when the leave, kick or ban is in the range, with the
  timeline up to it; on an initial sync only with `include_leave`, except
  kicks and bans, which are always reported. Forgotten rooms never are.
  A user who left without having been joined (a rejected invite, a
  withdrawn knock) gets the timeline events they may see (their own member
  events) but no room state.

Invites from users the user ignores are not reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import attrs

from homeserver.sync.filter import room_allowed
from storage.sync import Membership


@attrs.frozen
class RoomPlan:
    """A joined or left room to report, with its timeline range (lo, hi]."""

    room_id: str
    section: str
    lo: int
    hi: int
    # The client learns the room afresh: the full state, not a delta.
    full_state: bool
    # Joined in the range: the timeline is marked limited, as in Synapse.
    newly_joined: bool
    # False for rooms left without having been joined: no state at all.
    show_state: bool
    # Reported even with no new events (initial and full_state syncs, joins, leaves).
    always: bool


@attrs.frozen
class StrippedRoom:
    """An invited or knocked room: reported with stripped state."""

    room_id: str
    section: str
    event_id: str


def plan_rooms(
    user_id: str,
    memberships: Iterable[Membership],
    *,
    since: int | None,
    now: int,
    full_state: bool,
    room_filter: dict[str, Any],
    ignored: Collection[str],
    block_invites: bool = False,
) -> tuple[list[RoomPlan], list[StrippedRoom]]:
    """The joined and left rooms to report, and the invited and knocked ones
    (no invites for a user who blocks them, MSC4380)."""
    plans: list[RoomPlan] = []
    stripped: list[StrippedRoom] = []
    everything = since is None or full_state
    start = since or 0
    include_leave = bool(room_filter.get("include_leave", False))
    for m in memberships:
        if not room_allowed(room_filter, m.room_id):
            continue
        been_joined = m.membership_at_since == "join" or m.joined_in_range
        if m.membership == "join":
            newly = not everything and (m.membership_at_since != "join" or m.left_in_range)
            plans.append(
                RoomPlan(
                    m.room_id,
                    "join",
                    lo=0 if newly else start,
                    hi=now,
                    full_state=everything or newly,
                    newly_joined=newly,
                    show_state=True,
                    always=everything or newly,
                )
            )
        elif m.membership in ("invite", "knock"):
            ignore = m.membership == "invite" and (block_invites or m.sender in ignored)
            if (everything or m.stream_ordering > start) and not ignore:
                stripped.append(StrippedRoom(m.room_id, m.membership, m.event_id))
        elif m.membership in ("leave", "ban") and not (m.forgotten and everything):
            # A forgotten room stays out of initial syncs, but its leave still
            # reaches incremental ones, as Synapse does: otherwise a device
            # would never learn of a leave forgotten at once (matrix-spec#1458,
            # and forget_rooms_on_leave forgets at once).
            removed = m.membership == "ban" or m.sender != user_id
            if everything and not (include_leave or removed):
                continue
            if not everything and m.stream_ordering <= start:
                continue
            newly = not everything and m.membership_at_since != "join" and m.joined_in_range
            plans.append(
                RoomPlan(
                    m.room_id,
                    "leave",
                    lo=0 if newly else start,
                    hi=m.stream_ordering,
                    full_state=everything or newly,
                    newly_joined=newly,
                    show_state=been_joined,
                    always=True,
                )
            )
    return plans, stripped
