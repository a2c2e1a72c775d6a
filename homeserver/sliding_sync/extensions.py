"""The extensions of a sliding sync response (MSC3884 e2ee, MSC3885
to-device, MSC3959 account data, MSC3960 receipts, MSC3961 typing, MSC4308
thread subscriptions), as
MSC4186 clients (matrix-rust-sdk, matrix-js-sdk) use them.

Each extension is the /sync v2 provider of the same data, asked about the
range the engine gives (`since` to `upto`) and, for the per-room ones, only
about the rooms of the lists and subscriptions the extension names. So the
extensions share the providers' storage and their bounded queries (one per
extension, whatever the number of rooms), and answer what /sync v2 answers.

`build` returns {} when there is nothing to say: the engine treats anything
else as news that ends a long poll. So an extension appears only with news,
except on the first request of a connection (every extension then says
where it stands), and the key counts of `e2ee`, which are sent when they
differ from the last ones sent to the device (MSC3884: "if
device_one_time_keys_count has not changed between requests, it will be
omitted which means to use the previous value").
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from homeserver.requester import Requester
from homeserver.rooms.thread_subscriptions import ThreadSubscriptions, shape_changes
from homeserver.sliding_sync.extension_request import (
    WILDCARD,
    ExtensionsRequest,
    RoomScope,
    ToDeviceRequest,
    parse_extensions,
)
from homeserver.sync.response import SyncRequest
from homeserver.sync.token import SyncToken
from storage.to_device import ToDeviceStore

# How many devices' last sent key counts are remembered. A device forgotten
# (or the whole table, on restart) is simply sent its counts again.
REMEMBERED_DEVICES = 100_000


@attrs.frozen
class ExtensionScope:
    user_id: str
    device_id: str
    # Positions the previous response of this connection reached (None: first request).
    since: SyncToken | None
    # Positions this response reaches.
    upto: SyncToken
    # List name -> room ids of that list in this response's ranges.
    list_rooms: Mapping[str, Sequence[str]]
    # Room ids of room_subscriptions in this response.
    subscribed_rooms: Sequence[str]
    # True on the connection's first request.
    initial: bool
    # Rooms this response sends afresh (`initial`: new to the connection): their
    # receipts, typing and room account data are sent whole, not as changes.
    initial_rooms: Sequence[str] = ()


class Provider(Protocol):
    """A /sync v2 provider (homeserver/sync/service.py)."""

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None: ...


@attrs.frozen
class ExtensionProviders:
    """The /sync v2 providers the extensions reshape."""

    account_data: Provider
    push_rules: Provider
    receipts: Provider
    typing: Provider
    device_lists: Provider
    key_counts: Provider


def rooms_in_scope(scope: RoomScope, extension: ExtensionScope) -> list[str]:
    """The rooms of this response a per-room extension covers: those of the
    lists it names and the room subscriptions it names ("*": all of them).
    A room id named explicitly counts when it is anywhere in the response,
    as in Synapse."""
    chosen: dict[str, None] = {}
    if scope.lists is not None:
        names = (
            list(extension.list_rooms)
            if WILDCARD in scope.lists
            else [n for n in scope.lists if n in extension.list_rooms]
        )
        for name in names:
            chosen.update(dict.fromkeys(extension.list_rooms[name]))
    if scope.rooms is not None:
        if WILDCARD in scope.rooms:
            chosen.update(dict.fromkeys(extension.subscribed_rooms))
        else:
            in_response = set(extension.subscribed_rooms).union(*extension.list_rooms.values())
            chosen.update(dict.fromkeys(r for r in scope.rooms if r in in_response))
    return list(chosen)


def _moved(scope: ExtensionScope, stream: str) -> bool:
    return scope.since is None or scope.since[stream] != scope.upto[stream]


def _fresh_and_live(rooms: Sequence[str], scope: ExtensionScope) -> tuple[list[str], list[str]]:
    """The rooms sent afresh in an incremental response (whole data, as on a
    first request: Synapse does the same), and the others (changes only)."""
    if scope.since is None:
        return [], list(rooms)
    fresh = set(scope.initial_rooms)
    return [r for r in rooms if r in fresh], [r for r in rooms if r not in fresh]


def _room_entries(v2: dict[str, Any], key: str) -> dict[str, list[dict[str, Any]]]:
    """{room id: events} of one section of the joined rooms of a /sync v2 response."""
    return {
        room_id: entry[key]["events"]
        for room_id, entry in v2.get("rooms", {}).get("join", {}).items()
        if entry.get(key, {}).get("events")
    }


class SlidingSyncExtensions:
    def __init__(
        self,
        providers: ExtensionProviders,
        to_device: ToDeviceStore,
        thread_subscriptions: ThreadSubscriptions,
    ) -> None:
        self._providers = providers
        self._to_device = to_device
        self._thread_subscriptions = thread_subscriptions
        # (user, device) -> the key counts last sent to it.
        self._sent_counts: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    def parse(self, body: Any) -> ExtensionsRequest:
        """The request's `extensions` object; MatrixError 400 on bad input."""
        return parse_extensions(body)

    async def build(self, request: ExtensionsRequest, scope: ExtensionScope) -> dict[str, Any]:
        """The response's `extensions` object: {} when there is nothing to say."""
        parts: dict[str, Callable[[], Awaitable[dict[str, Any] | None]]] = {}
        if request.to_device is not None:
            to_device = request.to_device
            parts["to_device"] = lambda: self._to_device_part(to_device, scope)
        if request.e2ee:
            parts["e2ee"] = lambda: self._e2ee_part(scope)
        if request.account_data is not None:
            account_data = request.account_data
            parts["account_data"] = lambda: self._account_data_part(account_data, scope)
        if request.receipts is not None:
            receipts = request.receipts
            parts["receipts"] = lambda: self._ephemeral_part(
                self._providers.receipts, "receipts", receipts, scope
            )
        if request.typing is not None:
            typing = request.typing
            parts["typing"] = lambda: self._ephemeral_part(
                self._providers.typing, "typing", typing, scope
            )
        if request.thread_subscriptions is not None:
            limit = request.thread_subscriptions
            parts["thread_subscriptions"] = lambda: self._thread_subscriptions_part(limit, scope)
        results = await asyncio.gather(*(build() for build in parts.values()))
        return {name: part for name, part in zip(parts, results, strict=True) if part}

    @staticmethod
    def _v2_request(
        scope: ExtensionScope, rooms: Sequence[str] = (), *, whole: bool = False
    ) -> SyncRequest:
        """A /sync v2 request over the same range (`whole`: from the start),
        about `rooms` only."""
        return SyncRequest(
            # The providers read only the user and device of a requester.
            Requester(scope.user_id, scope.device_id, 0),
            None if whole else scope.since,
            scope.upto,
            {},
            False,
            "offline",
            peek_rooms=tuple(rooms),
        )

    async def _to_device_part(
        self, request: ToDeviceRequest, scope: ExtensionScope
    ) -> dict[str, Any] | None:
        """The device's messages after the extension's own `since`, which the
        client sends back once it has them: those up to it are deleted then,
        never before, so none is lost. When `limit` cut the batch short,
        `next_batch` stops at the last one sent and the rest follow."""
        now = scope.upto["to_device"]
        if not scope.device_id or (request.since is not None and request.since > now):
            # A position from ahead of this server's (a restored database):
            # nothing can be newer, and nothing may be acknowledged by it.
            return None
        acknowledged = request.since or 0
        messages = await self._to_device.acknowledge_and_read(
            scope.user_id, scope.device_id, acknowledged, now, request.limit
        )
        if not messages and request.since is not None:
            return None
        next_batch = messages[-1].stream_id if len(messages) == request.limit else now
        return {
            "next_batch": str(next_batch),
            "events": [
                {"type": m.type, "sender": m.sender, "content": json.loads(m.content_json)}
                for m in messages
            ],
        }

    async def _e2ee_part(self, scope: ExtensionScope) -> dict[str, Any] | None:
        """Device list changes since the previous response (none on the first:
        the client fetches the keys it needs anyway), and the device's key
        counts when they changed."""
        v2: dict[str, Any] = {}
        request = self._v2_request(scope)
        if scope.since is not None:
            await self._providers.device_lists.add(request, v2)
        await self._providers.key_counts.add(request, v2)
        part: dict[str, Any] = {}
        device_lists = v2.get("device_lists", {})
        if device_lists.get("changed") or device_lists.get("left"):
            part["device_lists"] = device_lists
        counts = {
            key: v2[key]
            for key in ("device_one_time_keys_count", "device_unused_fallback_key_types")
            if key in v2
        }
        device = (scope.user_id, scope.device_id)
        if scope.initial or scope.since is None or self._sent_counts.get(device) != counts:
            part.update(counts)
            self._remember_counts(device, counts)
        return part

    def _remember_counts(self, device: tuple[str, str], counts: dict[str, Any]) -> None:
        self._sent_counts[device] = counts
        self._sent_counts.move_to_end(device)
        while len(self._sent_counts) > REMEMBERED_DEVICES:
            self._sent_counts.popitem(last=False)

    async def _account_data_part(
        self, scope_request: RoomScope, scope: ExtensionScope
    ) -> dict[str, Any] | None:
        """Global account data (the push rules included on the first request)
        and that of the rooms in scope: all of it on the first request (and
        for rooms sent afresh), what changed since the previous response
        otherwise."""
        fresh, live = _fresh_and_live(rooms_in_scope(scope_request, scope), scope)
        part: dict[str, Any] = {}
        by_room: dict[str, list[dict[str, Any]]] = {}
        if _moved(scope, "account_data"):
            v2: dict[str, Any] = {}
            request = self._v2_request(scope, live)
            await self._providers.account_data.add(request, v2)
            if scope.since is None:
                await self._providers.push_rules.add(request, v2)
            global_events = v2.get("account_data", {}).get("events", [])
            if global_events:
                part["global"] = global_events
            by_room.update(_room_entries(v2, "account_data"))
        if fresh:
            whole: dict[str, Any] = {}
            await self._providers.account_data.add(
                self._v2_request(scope, fresh, whole=True), whole
            )
            by_room.update(_room_entries(whole, "account_data"))
        if by_room:
            part["rooms"] = by_room
        return part

    async def _thread_subscriptions_part(
        self, limit: int, scope: ExtensionScope
    ) -> dict[str, Any] | None:
        """The latest `limit` thread subscription changes since the previous
        response (on the first: of all time), and `prev_batch` for
        `/thread_subscriptions` when older ones were left out (MSC4308).
        They move on the account data stream."""
        if not _moved(scope, "account_data"):
            return None
        after = scope.since["account_data"] if scope.since is not None else 0
        page = await self._thread_subscriptions.changes(
            scope.user_id, after, scope.upto["account_data"], limit
        )
        part = shape_changes(page.subscriptions)
        if page.next_token is not None:
            part["prev_batch"] = page.next_token
        return part

    async def _ephemeral_part(
        self, provider: Provider, stream: str, scope_request: RoomScope, scope: ExtensionScope
    ) -> dict[str, Any] | None:
        """{"rooms": {room id: the m.receipt or m.typing event}} for the rooms
        in scope whose receipts or typing changed since the previous response
        (on the first request, and for rooms sent afresh: their current
        receipts, their typists)."""
        fresh, live = _fresh_and_live(rooms_in_scope(scope_request, scope), scope)
        by_room: dict[str, Any] = {}
        requests = []
        if live and _moved(scope, stream):
            requests.append(self._v2_request(scope, live))
        if fresh:
            requests.append(self._v2_request(scope, fresh, whole=True))
        for request in requests:
            v2: dict[str, Any] = {}
            await provider.add(request, v2)
            by_room.update(
                (room_id, event)
                for room_id, events in _room_entries(v2, "ephemeral").items()
                for event in events
            )
        return {"rooms": by_room} if by_room else None
