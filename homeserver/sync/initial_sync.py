"""The legacy initial syncs: GET /initialSync and GET /rooms/{roomId}/initialSync.

Element and older clients still call both. Neither computes anything of its
own:

- /initialSync is an initial /sync (SyncService.snapshot) reshaped: each
  room's `state` is the state at the end of its timeline (the /sync state
  plus the timeline's state events), its timeline becomes `messages`
  (`start` a /messages token for older history, `end` the sync token of the
  response), its `visibility` says whether it is published in the room
  directory, and the rooms' receipts move to a top-level `receipts` list.
  Rooms the user left are included only with `archived=true`, as they were
  when the user left.
- A room initialSync reads the room through HistoryService, which decides
  who may (members, users who left it as it was when they left, anyone for
  a world_readable room) and applies history visibility; its receipts,
  presence and room account data come from the /sync providers, asked for
  that one room: the presence of all its members. A user who left sees no
  receipts or presence, as in Synapse.

Events are in the legacy format (legacy_format.py) with their `room_id`, and
presence content carries its `user_id`, as in Synapse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from homeserver.requester import Requester
from homeserver.rooms.format import EventFormatter
from homeserver.rooms.history import HistoryService, RoomEventFilter
from homeserver.sync.event_stream import legacy_presence
from homeserver.sync.legacy_format import client_v1, clients_v1
from homeserver.sync.response import SyncRequest
from homeserver.sync.service import SyncProvider, SyncService
from storage.rooms import RoomStore

MEMBER = "m.room.member"
PUSH_RULES = "m.push_rules"


def _with_room(events: Sequence[dict[str, Any]], room_id: str) -> list[dict[str, Any]]:
    return [{**e, "room_id": room_id} for e in events]


def _room_events(events: Sequence[dict[str, Any]], room_id: str) -> list[dict[str, Any]]:
    """Events of a /sync room entry in the legacy format, with their room_id."""
    return clients_v1(_with_room(events, room_id))


def _state_at_end(
    state: list[dict[str, Any]], timeline: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The state after the timeline: `state` (before it) with its state events applied."""
    by_key = {(e["type"], e["state_key"]): e for e in state}
    for event in timeline:
        if "state_key" in event:
            by_key[(event["type"], event["state_key"])] = event
    return list(by_key.values())


def _tags_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Room account data with m.tag first, where Synapse puts it."""
    return sorted(events, key=lambda e: e["type"] != "m.tag")


class InitialSync:
    def __init__(
        self,
        sync: SyncService,
        history: HistoryService,
        rooms: RoomStore,
        formatter: EventFormatter,
        account_data: SyncProvider,
        room_ephemeral: Sequence[SyncProvider],
    ) -> None:
        self._sync = sync
        self._history = history
        self._rooms = rooms
        self._formatter = formatter
        # Room account data, and what a present reader of a room sees of it
        # besides its events (receipts, presence), asked for one room.
        self._account_data = account_data
        self._room_ephemeral = room_ephemeral

    async def initial_sync(
        self, requester: Requester, *, limit: int, archived: bool
    ) -> dict[str, Any]:
        sync_filter = {"room": {"timeline": {"limit": limit}, "include_leave": archived}}
        response = await self._sync.snapshot(requester, sync_filter)
        end = response["next_batch"]
        sections = response.get("rooms", {})
        rooms: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        for section in ("join", "leave") if archived else ("join",):
            for room_id, entry in sections.get(section, {}).items():
                rooms.append(self._room(requester.user_id, room_id, section, entry, end))
                receipts.extend(
                    {**e, "room_id": room_id}
                    for e in entry.get("ephemeral", {}).get("events", [])
                    if e["type"] == "m.receipt"
                )
        published = await self._rooms.published([r["room_id"] for r in rooms])
        for room in rooms:
            room["visibility"] = "public" if room["room_id"] in published else "private"
        for section in ("invite", "knock"):
            for room_id, entry in sections.get(section, {}).items():
                stripped = entry.get(f"{section}_state", {}).get("events", [])
                room: dict[str, Any] = {"room_id": room_id, "membership": section}
                if stripped:
                    room[section] = client_v1({**stripped[-1], "room_id": room_id})
                    room["inviter" if section == "invite" else "sender"] = stripped[-1]["sender"]
                rooms.append(room)
        return {
            "end": end,
            "rooms": rooms,
            "presence": [
                legacy_presence(e) for e in response.get("presence", {}).get("events", [])
            ],
            # Push rules have their own endpoint; /sync sends them as account
            # data, the legacy initialSync (like Synapse's) does not.
            "account_data": [
                e
                for e in response.get("account_data", {}).get("events", [])
                if e["type"] != PUSH_RULES
            ],
            "receipts": receipts,
        }

    @staticmethod
    def _room(
        user_id: str, room_id: str, section: str, entry: dict[str, Any], end: str
    ) -> dict[str, Any]:
        timeline = entry.get("timeline", {})
        events = _room_events(timeline.get("events", []), room_id)
        state = _state_at_end(
            _room_events(entry.get("state", {}).get("events", []), room_id), events
        )
        membership = section
        if section == "leave":
            mine = next(
                (e for e in state if e["type"] == MEMBER and e["state_key"] == user_id), None
            )
            if mine is not None:
                membership = mine["content"].get("membership", "leave")
        return {
            "room_id": room_id,
            "membership": membership,
            "messages": {"chunk": events, "start": timeline.get("prev_batch", end), "end": end},
            "state": state,
            "account_data": _tags_first(entry.get("account_data", {}).get("events", [])),
        }

    async def room_initial_sync(
        self, requester: Requester, room_id: str, *, limit: int
    ) -> dict[str, Any]:
        """403 unless the user is joined, left the room, or it is world_readable."""
        page = await self._history.messages(
            requester,
            room_id,
            backwards=True,
            from_token=None,
            to_token=None,
            limit=limit,
            event_filter=RoomEventFilter(),
        )
        state = await self._history.room_state(requester, room_id)
        membership, _ = await self._rooms.membership(room_id, requester.user_id)
        now = self._sync.current_token()
        request = SyncRequest(requester, None, now, {}, False, "offline", peek_rooms=(room_id,))
        response: dict[str, Any] = {}
        present = membership not in ("leave", "ban")
        for provider in [self._account_data, *(self._room_ephemeral if present else ())]:
            await provider.add(request, response)
        entry = response.get("rooms", {}).get("join", {}).get(room_id, {})
        body: dict[str, Any] = {
            "room_id": room_id,
            "messages": {
                "chunk": clients_v1(await self._formatter.serialize(page.events[::-1], requester)),
                "start": page.end or page.start,
                "end": str(now),
            },
            "state": clients_v1(await self._formatter.serialize(state, requester)),
            "presence": [
                legacy_presence(e) for e in response.get("presence", {}).get("events", [])
            ],
            "receipts": _with_room(
                [
                    e
                    for e in entry.get("ephemeral", {}).get("events", [])
                    if e["type"] == "m.receipt"
                ],
                room_id,
            ),
            "account_data": _tags_first(entry.get("account_data", {}).get("events", [])),
        }
        if membership is not None:
            body["membership"] = membership
        return body
