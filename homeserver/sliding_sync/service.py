"""The sliding sync engine (MSC4186): one request of a connection.

1. The connection's state at the request's `pos` (storage/sliding_sync.py):
   the sync token it reached, its lists' counts, and per room what it was
   sent (timeline position, membership, timeline_limit and required_state
   asked for, is_dm). No `pos`: a new connection, which replaces the
   device's one of the same conn_id. An unknown `pos`: 400 M_UNKNOWN_POS.
2. The user's server list (room_list.py), from one read of every room's
   membership and one of every room's activity and kind, whatever the number
   of rooms (user_rooms.py, which after a first look reads only what
   moved); each list filters, orders and windows it.
3. The rooms in the lists' windows and the subscriptions, each with the
   superset of the configs it matches, that are new to the connection or
   changed for it; their data (rooms.py).
4. The extensions' part.
5. Nothing new (no room, same counts, no extension data) and a `pos` given:
   wait for the notifier, up to `timeout`, and go again. When it times out,
   the same `pos` comes back and nothing is stored. Otherwise a new position
   is stored before the response leaves, so a restart keeps it valid.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import attrs

from homeserver.errors import MatrixError
from homeserver.ignored import IgnoredUsers
from homeserver.invite_permission import InviteBlocking
from homeserver.notifier import Notifier
from homeserver.requester import Requester
from homeserver.sliding_sync.extensions import ExtensionScope, SlidingSyncExtensions
from homeserver.sliding_sync.model import RoomConfig, SlidingSyncRequest, merged
from homeserver.sliding_sync.room_list import (
    NO_FILTERS,
    ListRoom,
    account_view,
    in_server_list,
    matches,
    window,
)
from homeserver.sliding_sync.rooms import RoomDataBuilder, RoomWork
from homeserver.sliding_sync.user_rooms import UserRooms, UserRoomsReader
from homeserver.sync.service import SyncActivity
from homeserver.sync.token import STREAMS, SyncToken
from storage.sliding_sync import SlidingSyncStore, StoredPosition
from storage.sync import SyncStore

# Connections unused for this long are dropped (their clients start afresh).
CONNECTION_MAX_AGE_MS = 7 * 24 * 3600 * 1000
# A device's connections beyond this many (the least recently used) are dropped.
MAX_CONNECTIONS_PER_DEVICE = 10
# Per connection, what was sent is remembered for at most this many rooms
# (the most recently active); the others are sent afresh if they come back.
MAX_REMEMBERED_ROOMS = 10_000
# Per room, the lazily loaded members remembered as sent (beyond: sent again).
MAX_LAZY_MEMBERS_REMEMBERED = 200


# A `pos` is "s<event stream position>_<stored position id>": the id names
# the connection's state, and the lead makes it a token /messages accepts
# (MSC4186: "A `pos` token can be used in `/messages`").
_POS = re.compile(r"s\d{1,19}_(\d{1,18})")


def unknown_pos() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN_POS", "Unknown or expired pos: start a new connection")


@attrs.frozen
class _Account:
    """What of the user's account data a look reads, and the account data
    stream position read before it: while that stream has not moved, a
    later look of the same request (a woken long poll) uses it again
    instead of asking the database."""

    ignored: frozenset[str]
    direct: dict[str, Any]
    tags: dict[str, Any]
    position: int


@attrs.frozen
class _Outcome:
    rooms: dict[str, dict[str, Any]]
    counts: dict[str, int]
    extensions: dict[str, Any]
    remembered: dict[str, Any]
    # The position this outcome was already stored as, when it was stored
    # while its rooms were built (`early`); None then: the connection is gone.
    early: bool = False
    saved: int | None = None

    def news(self, before: StoredPosition | None) -> bool:
        return (
            bool(self.rooms)
            or bool(self.extensions)
            or (before is None or before.lists != self.counts)
        )


class SlidingSyncService:
    def __init__(
        self,
        notifier: Notifier,
        store: SlidingSyncStore,
        sync_store: SyncStore,
        rooms: RoomDataBuilder,
        ignored: IgnoredUsers,
        extensions: SlidingSyncExtensions,
        activity: SyncActivity | None = None,
        invite_policy: InviteBlocking | None = None,
    ) -> None:
        # Users who block invites see none (MSC4380).
        self._invite_policy = invite_policy
        self._notifier = notifier
        self._store = store
        self._rooms = rooms
        self._ignored = ignored
        self._extensions = extensions
        self._activity = activity
        self._user_rooms = UserRoomsReader(sync_store, store)

    def _current_token(self) -> SyncToken:
        return SyncToken({s: self._notifier.positions.get(s, 0) for s in STREAMS})

    async def sync(self, requester: Requester, request: SlidingSyncRequest) -> dict[str, Any]:
        """The response: `pos`, `lists`, `rooms`, `extensions` (unstable field names)."""
        device_id = requester.device_id or ""
        stored: StoredPosition | None = None
        used: int | None = None
        if request.pos is not None:
            match = _POS.fullmatch(request.pos)
            if match is None:
                raise unknown_pos()
            used = int(match.group(1))
            stored = await self._store.position(requester.user_id, device_id, request.conn_id, used)
            if stored is None:
                raise unknown_pos()
            _share_rules(stored.rooms, request)
        activity = (
            self._activity.syncing(requester.user_id, request.set_presence)
            if self._activity is not None
            else nullcontext()
        )
        async with activity:
            if stored is None:
                # A new connection is made while its first response is built.
                (now, outcome), connection = await asyncio.gather(
                    self._respond(requester, request, stored, used),
                    self._store.new_connection(
                        requester.user_id,
                        device_id,
                        request.conn_id,
                        max_age_ms=CONNECTION_MAX_AGE_MS,
                        max_per_device=MAX_CONNECTIONS_PER_DEVICE,
                    ),
                )
            else:
                now, outcome = await self._respond(requester, request, stored, used)
                connection = stored.connection_id
        if stored is not None and used is not None and not outcome.news(stored):
            await self._store.touch(connection, used)
            pos = request.pos
        else:
            saved = (
                outcome.saved
                if outcome.early
                else await self._store.save_position(
                    connection,
                    used=used,
                    token=str(now),
                    lists=outcome.counts,
                    rooms=outcome.remembered,
                )
            )
            if saved is None:
                raise unknown_pos()
            pos = f"s{now['events']}_{saved}"
        return {
            "pos": pos,
            "lists": {name: {"count": count} for name, count in outcome.counts.items()},
            "rooms": outcome.rooms,
            "extensions": outcome.extensions,
        }

    async def _respond(
        self,
        requester: Requester,
        request: SlidingSyncRequest,
        stored: StoredPosition | None,
        used: int | None,
    ) -> tuple[SyncToken, _Outcome]:
        since = SyncToken.parse(stored.token) if stored is not None else None
        timeout = request.timeout_ms if stored is not None else 0
        deadline = time.monotonic() + timeout / 1000
        account: _Account | None = None
        while True:
            now = self._current_token()
            outcome, joined, account = await self._look(
                requester, request, stored, used, since, now, account
            )
            remaining = deadline - time.monotonic()
            if outcome.news(stored) or remaining <= 0:
                return now, outcome
            # A parked poll holds only what its timeout answers with: nothing
            # is stored then, so what it would remember is dropped.
            outcome = attrs.evolve(outcome, remembered={})
            # The joined rooms as the view has them: a membership change
            # notifies the user, so the view is up to date for what it wakes.
            await self._notifier.wait(requester.user_id, joined, now.positions, remaining)
            if time.monotonic() >= deadline and not self._notifier.moved_since(now.positions):
                return now, outcome
            # Let the writes that woke us settle before building again.
            await asyncio.sleep(0)

    async def _look(
        self,
        requester: Requester,
        request: SlidingSyncRequest,
        stored: StoredPosition | None,
        used: int | None,
        since: SyncToken | None,
        now: SyncToken,
        previous: _Account | None,
    ) -> tuple[_Outcome, frozenset[str], _Account]:
        """The outcome, the joined rooms to wait on, and the account data it
        used; the user's view of all their rooms is not kept by a parked
        poll (the reader keeps the latest)."""
        user_id = requester.user_id
        position = self._notifier.positions.get("account_data", 0)
        if previous is not None and previous.position == position:
            # Woken by a room's news: the one read a wake-up needs.
            view = await self._user_rooms.read(user_id, now["events"])
            account = previous
        else:
            # Independent reads, side by side: a look waits for the longest
            # of them, not for their sum.
            view, ignored, (direct, tags) = await asyncio.gather(
                self._user_rooms.read(user_id, now["events"]),
                self._ignored.ignored_users(user_id),
                self._store.direct_and_tags(user_id),
            )
            account = _Account(ignored, direct, tags, position)
        outcome = await self._build(requester, request, stored, used, since, now, view, account)
        return outcome, view.joined, account

    async def _build(
        self,
        requester: Requester,
        request: SlidingSyncRequest,
        stored: StoredPosition | None,
        used: int | None,
        since: SyncToken | None,
        now: SyncToken,
        view: UserRooms,
        read: _Account,
    ) -> _Outcome:
        user_id = requester.user_id
        remembered: dict[str, Any] = dict(stored.rooms) if stored is not None else {}
        ignored = read.ignored
        block_invites = (
            self._invite_policy is not None and await self._invite_policy.blocks_invites(user_id)
        )
        # An account in joined rooms only (most big ones) lists them all.
        server_list = (
            view.listed
            if len(view.joined) == len(view.listed)
            else [
                r
                for r in view.listed
                if r.membership.membership == "join"
                or in_server_list(
                    user_id,
                    r.membership,
                    ignored,
                    remembered.get(r.room_id, {}).get("m"),
                    block_invites,
                )
            ]
        )
        facts = view.facts
        direct, tags = read.direct, read.tags
        spaces = {s for c in request.lists.values() for s in (c.filters.spaces or ()) if s in facts}
        joined_spaces = view.joined & spaces
        children = await self._store.space_children(joined_spaces) if joined_spaces else {}
        account = account_view(direct, tags, children)
        by_id = view.by_id

        configs: dict[str, list[RoomConfig]] = {}
        lists_of: dict[str, list[str]] = {}
        counts: dict[str, int] = {}
        list_rooms: dict[str, list[str]] = {}
        for name, config in request.lists.items():
            filtered = (
                server_list
                if config.filters == NO_FILTERS
                else [r for r in server_list if matches(r, config.filters, account)]
            )
            counts[name] = len(filtered)
            shown = window(filtered, config)
            list_rooms[name] = [r.room_id for r in shown]
            for r in shown:
                configs.setdefault(r.room_id, []).append(config.room)
                lists_of.setdefault(r.room_id, []).append(name)
        subscribed = [
            room_id
            for room_id in request.subscriptions
            if room_id in by_id
            and by_id[room_id].membership.membership in ("join", "invite", "knock")
            and in_server_list(
                user_id,
                by_id[room_id].membership,
                ignored,
                remembered.get(room_id, {}).get("m"),
                block_invites,
            )
        ]
        for room_id in subscribed:
            configs.setdefault(room_id, []).append(request.subscriptions[room_id])

        works = []
        for room_id, room_configs in configs.items():
            config = merged(room_configs)
            assert config is not None
            room = by_id[room_id]
            work = self._work(room, config, remembered.get(room_id), lists_of, account.dm_rooms)
            previous = remembered.get(room_id)
            remembered[room_id] = {
                "u": room.position,
                "m": room.membership.membership,
                "tl": config.timeline_limit,
                "rs": config.state_json(),
                "dm": room_id in account.dm_rooms,
            }
            if previous is not None and "lz" in previous and work is None:
                remembered[room_id]["lz"] = previous["lz"]
            if work is not None:
                works.append(work)
        # Newest rooms first, so they are the ones the connection's mirror keeps.
        works.sort(key=lambda w: (-w.room.bump_stamp, w.room_id))
        building = self._rooms.build(
            requester,
            works,
            since["events"] if since is not None else None,
            now["events"],
            ignored,
        )
        saving: asyncio.Future[int | None] | None = None
        if stored is not None and works and not any(w.config.lazy for w in works):
            # Rooms to send make a new position certain, and without lazy
            # members what it remembers is known before they are built: it
            # is stored meanwhile, so a woken long poll does not wait for
            # this write after building (a lost response leaves `used` valid).
            saving = asyncio.ensure_future(
                self._store.save_position(
                    stored.connection_id,
                    used=used,
                    token=str(now),
                    lists=counts,
                    rooms=_bounded(remembered),
                )
            )
        try:
            rooms, members_sent = await building
            for work in works:
                if work.config.lazy:
                    known = members_sent.get(work.room_id, set()) | work.members_sent
                    remembered[work.room_id]["lz"] = sorted(known)[:MAX_LAZY_MEMBERS_REMEMBERED]
            extensions = await self._extensions.build(
                request.extensions,  # type: ignore[arg-type]
                ExtensionScope(
                    user_id=user_id,
                    device_id=requester.device_id or "",
                    since=since,
                    upto=now,
                    list_rooms=list_rooms,
                    subscribed_rooms=subscribed,
                    initial=stored is None,
                    initial_rooms=[r for r, entry in rooms.items() if entry.get("initial")],
                ),
            )
        except BaseException:
            if saving is not None:
                saving.cancel()
            raise
        kept = _bounded(remembered)
        if saving is None:
            return _Outcome(rooms, counts, extensions, kept)
        return _Outcome(rooms, counts, extensions, kept, early=True, saved=await saving)

    @staticmethod
    def _work(
        room: ListRoom,
        config: RoomConfig,
        before: Mapping[str, Any] | None,
        lists_of: Mapping[str, list[str]],
        dm_rooms: frozenset[str],
    ) -> RoomWork | None:
        """How much of the room to send, given what the connection was sent of
        it; None when nothing changed for it."""
        membership = room.membership.membership
        is_dm = room.room_id in dm_rooms
        fresh = before is None or (
            before.get("m") in ("invite", "knock") and before.get("m") != membership
        )
        if fresh or before is None:
            return RoomWork(
                room,
                config,
                initial=True,
                sent_upto=0,
                expanded_timeline=False,
                expanded_state=False,
                lists=tuple(lists_of.get(room.room_id, ())),
                is_dm=is_dm,
                send_dm=is_dm,
            )
        sent_upto = int(before.get("u", 0))
        expanded_timeline = config.timeline_limit > int(before.get("tl", 0))
        rules = config.state_json()
        # Mostly the very rules sent before: an equality, not a set per room.
        expanded_state = before.get("rs") != rules and _widened(before.get("rs", []), rules)
        dm_changed = bool(before.get("dm")) != is_dm
        if not (
            room.position > sent_upto
            or before.get("m") != membership
            or expanded_timeline
            or expanded_state
            or dm_changed
        ):
            return None
        members_sent = frozenset(before.get("lz", ()))
        return RoomWork(
            room,
            config,
            initial=False,
            sent_upto=sent_upto,
            expanded_timeline=expanded_timeline,
            expanded_state=expanded_state,
            lists=tuple(lists_of.get(room.room_id, ())),
            is_dm=is_dm,
            send_dm=dm_changed,
            # A widened required_state starts lazy loading over.
            members_sent=frozenset() if expanded_state else members_sent,
        )


def _share_rules(rooms: Mapping[str, Any], request: SlidingSyncRequest) -> None:
    """Make the rooms' remembered required_state rules that equal one of the
    request's configs that config's own (shared) object: a long poll holds
    its position while it waits, and a copy of the same rules per room is
    most of what a parked connection would hold."""
    shared = [
        c.state_json()
        for c in (
            *(config.room for config in request.lists.values()),
            *request.subscriptions.values(),
        )
    ]
    for entry in rooms.values():
        rules = entry.get("rs")
        for candidate in shared:
            if rules is not candidate and rules == candidate:
                entry["rs"] = candidate
                break


def _widened(old: list[Any], new: list[dict[str, object]]) -> bool:
    """Whether the required state `new` asks for a rule `old` did not."""
    old_rules = {json.dumps(r, sort_keys=True) for r in old}
    return any(json.dumps(r, sort_keys=True) not in old_rules for r in new)


def _bounded(remembered: dict[str, Any]) -> dict[str, Any]:
    if len(remembered) <= MAX_REMEMBERED_ROOMS:
        return remembered
    newest = sorted(remembered.items(), key=lambda kv: -int(kv[1].get("u", 0)))
    return dict(newest[:MAX_REMEMBERED_ROOMS])
