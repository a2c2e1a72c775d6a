"""Restricted join rules (`restricted` from room 8, `knock_restricted` from
room 10): who may join without an invite, and which of our users vouches.

The auth rules accept such a join only when its content names, in
`join_authorised_via_users_server`, a joined member able to invite, whose
server signed the event. So the server deciding (ours, for our rooms) must
pick one of its own users: it judges the joiner's membership of the allowed
rooms from the state it holds, which it can only trust for rooms one of its
users is in. Local joins and other servers' make_join/send_join both ask here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.errors import MatrixError, forbidden
from homeserver.events.auth import get_named_level, get_power_level
from homeserver.events.event import Event, StateKey
from homeserver.events.room_versions import RoomVersion
from storage.events import EventStore
from storage.restricted_joins import RestrictedJoinStore

JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")
AUTHORISER_KEY = "join_authorised_via_users_server"
_NEEDED = (("m.room.create", ""), JOIN_RULES_KEY, ("m.room.power_levels", ""))


def is_restricted(room_version: RoomVersion, join_rules: Event | None) -> bool:
    """Whether the join rule lets members of other rooms in, in this room version."""
    rule = join_rules.content.get("join_rule") if join_rules is not None else None
    return (rule == "restricted" and room_version.restricted_join_rule) or (
        rule == "knock_restricted" and room_version.knock_restricted_join_rule
    )


def allowed_room_ids(join_rules_content: Mapping[str, Any]) -> list[str]:
    """The rooms of the `m.room_membership` allow entries; malformed entries are ignored."""
    allow = join_rules_content.get("allow")
    return list(
        dict.fromkeys(
            entry["room_id"]
            for entry in (allow if isinstance(allow, list) else [])
            if isinstance(entry, dict)
            and entry.get("type") == "m.room_membership"
            and isinstance(entry.get("room_id"), str)
        )
    )


def unable_to_authorise(message: str) -> MatrixError:
    return MatrixError(400, "M_UNABLE_TO_AUTHORISE_JOIN", message)


class NoLocalAuthoriser(MatrixError):
    """M_UNABLE_TO_GRANT_JOIN: none of our members may invite. `servers` are
    those of members who may, most powerful first: a local user's join can
    go through one of them instead."""

    def __init__(self, servers: list[str]) -> None:
        super().__init__(
            400, "M_UNABLE_TO_GRANT_JOIN", "No member of this server may invite to the room"
        )
        self.servers = servers


class RestrictedJoins:
    def __init__(self, events: EventStore, store: RestrictedJoinStore, *, server_name: str) -> None:
        self._events = events
        self._store = store
        self._server_name = server_name

    async def authoriser(
        self,
        room_version: RoomVersion,
        room_id: str,
        state: Mapping[StateKey, Event],
        user_id: str,
    ) -> str | None:
        """The local user to name in `user_id`'s join, or None when the join
        needs nobody's word (the rule is not restricted, or the user is
        already joined or invited).

        `state` is the room's current state, at least its create, join
        rules, power levels and the user's member event. Raises 403
        M_FORBIDDEN when the user is in none of the allowed rooms,
        M_UNABLE_TO_AUTHORISE_JOIN when an allowed room is one this server
        is not in (another server may know better), M_UNABLE_TO_GRANT_JOIN
        when no local member could invite.
        """
        join_rules = state.get(JOIN_RULES_KEY)
        if join_rules is None or not is_restricted(room_version, join_rules):
            return None
        member = state.get(("m.room.member", user_id))
        if member is not None and member.content.get("membership") in ("join", "invite"):
            return None
        await self.check_eligible(join_rules, user_id)
        return await self._able_to_invite(room_version, room_id, state)

    async def check_eligible(self, join_rules: Event, user_id: str) -> None:
        """Raise unless `user_id` is joined to an allowed room this server is in."""
        views = await self._store.allowed_rooms(
            allowed_room_ids(join_rules.content), user_id, self._server_name
        )
        if any(v.resident and v.user_joined for v in views):
            return
        if user_id.partition(":")[2] != self._server_name and any(not v.resident for v in views):
            raise unable_to_authorise(
                f"This server cannot tell whether {user_id} is in the rooms the join rule allows"
            )
        raise forbidden("You are not in any of the rooms this room's join rule allows")

    async def _able_to_invite(
        self, room_version: RoomVersion, room_id: str, state: Mapping[StateKey, Event]
    ) -> str:
        """The most powerful local member able to invite (by user id on a tie)."""
        invite_level = get_named_level(room_version, "invite", state)
        levels = {
            user: get_power_level(room_version, user, state)
            for user in await self._store.joined_members(room_id)
        }
        able = sorted(
            (u for u, level in levels.items() if level >= invite_level),
            key=lambda u: (-levels[u], u),
        )
        ours = [u for u in able if u.partition(":")[2] == self._server_name]
        if not ours:
            raise NoLocalAuthoriser(list(dict.fromkeys(u.partition(":")[2] for u in able)))
        return ours[0]

    async def current_authoriser(self, room_id: str, user_id: str) -> str | None:
        """`authoriser` against the room's current state, for a local join."""
        rules_id = await self._events.current_state_event_id(room_id, *JOIN_RULES_KEY)
        room_version = await self._events.room_version(room_id)
        if rules_id is None or room_version is None:
            return None
        rules = (await self._events.get_events([rules_id])).get(rules_id)
        if rules is None or not is_restricted(room_version, rules.event):
            return None
        ids = await self._events.current_state_ids(room_id)
        wanted = {k: ids[k] for k in (*_NEEDED, ("m.room.member", user_id)) if k in ids}
        loaded = await self._events.get_events(wanted.values())
        state = {k: loaded[i].event for k, i in wanted.items() if i in loaded}
        return await self.authoriser(room_version, room_id, state, user_id)
