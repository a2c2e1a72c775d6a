"""The next transaction for one application service, read from the streams.

Each stream (events, public read receipts, to-device messages, device list
changes) is read from the appservice's stored position in one bounded scan;
what the appservice is interested in is kept, up to the per-transaction caps,
and the positions the transaction moves to are where the scan stopped (just
after the last item taken, when a cap was hit). Typing and presence are not
stored streams: they come from the services' listeners, kept in memory as the
latest state per room or user until the next transaction.

The body uses the names clients read: `ephemeral` with the unstable MSC2409
`de.sorunome.msc2409.ephemeral`, `to_device` with MSC4203's (still MSC2409
named) `de.sorunome.msc2409.to_device`, and MSC3202's unstable
`org.matrix.msc3202.*` keys, under both spellings of the key count Synapse
sends (`device_one_time_keys_count` and `device_one_time_key_counts`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from homeserver.appservice.delivery.interest import RoomInterest
from homeserver.ephemeral.presence import presence_content
from homeserver.rooms.format import EventFormatter
from homeserver.sync.rooms import STRIPPED_STATE_KEYS
from storage.appservice_delivery import AppServiceDeliveryStore, DeviceMessage, StreamEvent
from storage.events import EventStore
from storage.presence import PresenceRow
from storage.receipts import Receipt

if TYPE_CHECKING:
    from homeserver.appservice.registration import AppService

EVENTS = "events"
RECEIPTS = "receipts"
TO_DEVICE = "to_device"
DEVICE_LISTS = "device_lists"
STREAMS = (EVENTS, RECEIPTS, TO_DEVICE, DEVICE_LISTS)
# The spec's (and Synapse's) cap on events per transaction.
MAX_EVENTS = 100
# Caps on ephemeral events and to-device messages per transaction, as Synapse's.
MAX_EPHEMERAL = 100
MAX_TO_DEVICE = 100
# Rows of each stream read per transaction built.
SCAN = 1000


@attrs.frozen
class BuiltTransaction:
    """A transaction's body and the positions acknowledging it moves to;
    `body` is None when nothing in the range was for the appservice."""

    body: dict[str, Any] | None
    positions: dict[str, int]
    # Stream orderings of its events, for the delivery latency metric.
    event_orderings: tuple[int, ...]


@attrs.define
class EphemeralBuffer:
    """Typing and presence changes heard since the last transaction: the
    rooms whose typing changed and the latest presence of each user."""

    typing_rooms: set[str] = attrs.Factory(set)
    presence: dict[str, PresenceRow] = attrs.Factory(dict)

    def take(self) -> tuple[set[str], list[PresenceRow]]:
        rooms, rows = self.typing_rooms, list(self.presence.values())
        self.typing_rooms, self.presence = set(), {}
        return rooms, rows


def _cut(items: Sequence[Any], wanted: Callable[[Any], bool], cap: int) -> tuple[list[Any], int]:
    """The wanted items, at most `cap`, and how many items were consumed."""
    taken: list[Any] = []
    for index, item in enumerate(items):
        if wanted(item):
            taken.append(item)
            if len(taken) == cap:
                return taken, index + 1
    return taken, len(items)


def _position(rows: Sequence[Any], consumed: int, key: Callable[[Any], int], upto: int) -> int:
    """Where a stream's scan stops: after the last row consumed, or at
    `upto` when every row in the range was consumed."""
    if consumed < len(rows) or len(rows) == SCAN:
        return key(rows[consumed - 1])
    return upto


def _whole_sends(messages: list[DeviceMessage], full: bool) -> list[DeviceMessage]:
    """Without the last send's messages when the scan may have cut it (a send
    has one position for all its devices), unless that is all there is."""
    if not full or not messages:
        return messages
    last = messages[-1].stream_id
    kept = [m for m in messages if m.stream_id != last]
    return kept or messages


class TransactionBuilder:
    def __init__(
        self,
        *,
        store: AppServiceDeliveryStore,
        events: EventStore,
        formatter: EventFormatter,
        interest: RoomInterest,
        typing_users: Callable[[str], list[str]],
        server_name: str,
    ) -> None:
        self._store = store
        self._events = events
        self._formatter = formatter
        self._interest = interest
        self._typing_users = typing_users
        self._server_name = server_name

    async def build(
        self,
        appservice: AppService,
        positions: Mapping[str, int],
        current: Mapping[str, int],
        ephemeral: EphemeralBuffer,
    ) -> BuiltTransaction:
        new_positions = dict(positions)
        body: dict[str, Any] = {}
        events, orderings, new_positions[EVENTS] = await self._events_part(
            appservice, positions[EVENTS], current.get(EVENTS, 0)
        )
        to_device: list[dict[str, Any]] = []
        recipients: set[str] = set()
        if appservice.receive_ephemeral:
            edus, new_positions[RECEIPTS] = await self._ephemeral_part(
                appservice, positions[RECEIPTS], current.get(RECEIPTS, 0), ephemeral
            )
            to_device, recipients, new_positions[TO_DEVICE] = await self._to_device_part(
                appservice, positions[TO_DEVICE], current.get(TO_DEVICE, 0)
            )
            if edus:
                body["ephemeral"] = body["de.sorunome.msc2409.ephemeral"] = edus
            if to_device:
                body["to_device"] = body["de.sorunome.msc2409.to_device"] = to_device
        if appservice.device_masquerading:
            (changed, left), new_positions[DEVICE_LISTS] = await self._device_lists_part(
                appservice, positions[DEVICE_LISTS], current.get(DEVICE_LISTS, 0), events
            )
            if changed or left:
                body["org.matrix.msc3202.device_lists"] = {"changed": changed, "left": left}
            mentioned = recipients | {e["sender"] for e in events}
            await self._add_key_counts(appservice, mentioned, body)
        if not events and not body:
            return BuiltTransaction(None, new_positions, ())
        body["events"] = events
        return BuiltTransaction(body, new_positions, orderings)

    async def _events_part(
        self, appservice: AppService, after: int, upto: int
    ) -> tuple[list[dict[str, Any]], tuple[int, ...], int]:
        if upto <= after:
            return [], (), after
        rows = await self._store.events(after, upto, SCAN)
        if not rows:
            return [], (), upto
        self._interest.invalidate_for(rows)
        await self._interest.load({r.room_id for r in rows})
        taken, consumed = _cut(
            rows, lambda r: self._interest.event_wanted(appservice, r), MAX_EVENTS
        )
        position = _position(rows, consumed, lambda r: r.stream_ordering, upto)
        events = await self._serialize(taken)
        await self._add_invite_state(appservice, events)
        return events, tuple(r.stream_ordering for r in taken), position

    async def _serialize(self, rows: list[StreamEvent]) -> list[dict[str, Any]]:
        if not rows:
            return []
        stored = await self._events.get_events(r.event_id for r in rows)
        found = [stored[r.event_id] for r in rows if r.event_id in stored]
        return await self._formatter.serialize(found, None, aggregations=False)

    async def _add_invite_state(self, appservice: AppService, events: list[dict[str, Any]]) -> None:
        """Invites and knocks of the appservice's users carry the room's
        stripped state in unsigned.invite_room_state, as Synapse sends them
        (the room as it is now; one query for all)."""
        invites = [
            e
            for e in events
            if e["type"] == "m.room.member"
            and e["content"].get("membership") in ("invite", "knock")
            and appservice.is_user_in_namespace(e["state_key"])
        ]
        if not invites:
            return
        state = await self._store.stripped_state(
            {e["room_id"] for e in invites}, [t for t, _ in STRIPPED_STATE_KEYS]
        )
        for event in invites:
            event["unsigned"]["invite_room_state"] = [
                pdu
                if pdu["type"] == "m.room.create"
                else {k: pdu[k] for k in ("type", "state_key", "content", "sender")}
                for pdu in state[event["room_id"]]
            ]

    async def _ephemeral_part(
        self, appservice: AppService, after: int, upto: int, buffer: EphemeralBuffer
    ) -> tuple[list[dict[str, Any]], int]:
        typing_rooms, presence_rows = buffer.take()
        receipts: list[tuple[int, Receipt]] = []
        if upto > after:
            receipts = await self._store.receipts(after, upto, SCAN)
        outsiders = [
            r.user_id for r in presence_rows if not appservice.is_user_in_namespace(r.user_id)
        ]
        joined = await self._store.joined_rooms(outsiders) if outsiders else {}
        rooms = typing_rooms | {r.room_id for _, r in receipts}
        rooms.update(room for user_rooms in joined.values() for room in user_rooms)
        await self._interest.load(rooms)
        edus: list[dict[str, Any]] = []
        for room_id in sorted(typing_rooms):
            if self._interest.room_wanted(appservice, room_id):
                edus.append(
                    {
                        "type": "m.typing",
                        "room_id": room_id,
                        "content": {"user_ids": self._typing_users(room_id)},
                    }
                )
        taken, consumed = _cut(
            receipts,
            lambda r: self._interest.room_wanted(appservice, r[1].room_id),
            MAX_EPHEMERAL,
        )
        position = _position(receipts, consumed, lambda r: r[0], upto) if receipts else upto
        for _, receipt in taken:
            content = {"ts": receipt.ts}
            if receipt.thread_id:
                content["thread_id"] = receipt.thread_id
            edus.append(
                {
                    "type": "m.receipt",
                    "room_id": receipt.room_id,
                    "content": {
                        receipt.event_id: {receipt.receipt_type: {receipt.user_id: content}}
                    },
                }
            )
        now = int(time.time() * 1000)
        for row in presence_rows:
            if appservice.is_user_in_namespace(row.user_id) or any(
                self._interest.room_wanted(appservice, r) for r in joined.get(row.user_id, ())
            ):
                edus.append(
                    {
                        "type": "m.presence",
                        "sender": row.user_id,
                        "content": presence_content(row, now),
                    }
                )
        return edus, max(position, after)

    async def _to_device_part(
        self, appservice: AppService, after: int, upto: int
    ) -> tuple[list[dict[str, Any]], set[str], int]:
        if upto <= after:
            return [], set(), after
        rows = await self._store.device_messages(after, upto, SCAN)
        scanned = _whole_sends(rows, full=len(rows) == SCAN)
        taken = [m for m in scanned if appservice.is_user_in_namespace(m.user_id)]
        if len(rows) == SCAN:
            position = scanned[-1].stream_id
        else:
            position = upto
        messages = [
            {
                "type": m.type,
                "sender": m.sender,
                "to_user_id": m.user_id,
                "to_device_id": m.device_id,
                "content": m.content,
            }
            for m in taken
        ]
        return messages, {m.user_id for m in taken}, position

    async def _device_lists_part(
        self,
        appservice: AppService,
        after: int,
        upto: int,
        events: list[dict[str, Any]],
    ) -> tuple[tuple[list[str], list[str]], int]:
        """Users whose devices changed who are in the namespace or share a room
        the appservice is interested in; and users of the events' departures
        who no longer share any such room."""
        changes: list[tuple[int, str]] = []
        if upto > after:
            changes = await self._store.device_list_changes(after, upto, SCAN)
        position = changes[-1][0] if len(changes) == SCAN else max(upto, after)
        departed = {
            e["state_key"]
            for e in events
            if e["type"] == "m.room.member"
            and e.get("content", {}).get("membership") in ("leave", "ban")
            and not appservice.is_user_in_namespace(e["state_key"])
        }
        users = {u for _, u in changes} | departed
        joined = await self._store.joined_rooms(users) if users else {}
        await self._interest.load({r for rooms in joined.values() for r in rooms})

        def shares(user_id: str) -> bool:
            return any(self._interest.room_wanted(appservice, r) for r in joined.get(user_id, ()))

        changed = sorted({u for _, u in changes if appservice.is_user_in_namespace(u) or shares(u)})
        left = sorted(u for u in departed if not shares(u))
        return (changed, left), position

    async def _add_key_counts(
        self, appservice: AppService, mentioned: set[str], body: dict[str, Any]
    ) -> None:
        """MSC3202 key counts of the namespace's local users this transaction
        mentions (senders and to-device recipients)."""
        suffix = ":" + self._server_name
        users = [u for u in mentioned if u.endswith(suffix) and appservice.is_user_in_namespace(u)]
        if not users:
            return
        counts = await self._store.key_counts(users)
        if counts.one_time:
            body["org.matrix.msc3202.device_one_time_keys_count"] = counts.one_time
            body["org.matrix.msc3202.device_one_time_key_counts"] = counts.one_time
        if counts.unused_fallback:
            body["org.matrix.msc3202.device_unused_fallback_key_types"] = counts.unused_fallback
