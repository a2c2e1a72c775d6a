"""HTTP pushes to push gateways (spec: Push Gateway API, POST /_matrix/push/v1/notify).

The pushes of events come from the notification rows, in stream order
(push/stream.py `PushStream`, which holds the pushers' lease): for each
event it hands over, `push_event` loads the users' pushers, the room's names
and each user's badge count, queues one request per pusher, and returns a
future done once every one of them was sent or given up, so that the stream
stores its position only past events that are.

Each pusher has its own queue, sent in order by one task: a gateway that is
down is retried with exponential backoff (a bounded number of times per
push) without a pile of concurrent retries against it. A pushkey the gateway
lists as rejected loses its pusher. The payloads follow Synapse where the
spec leaves room: `prio` is high for highlights, sounds and encrypted events;
`counts.unread` is the number of rooms with unread notifications plus
pending invites; the room name falls back to members' names as Synapse's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Final

import aiohttp
import attrs

from homeserver.ephemeral.receipts import READ, READ_PRIVATE
from homeserver.events.event import Event
from homeserver.push.counts import ReadPositions, read_up_to
from homeserver.push.pushers import EVENT_ID_ONLY
from storage.push import NewNotification, PushStore
from storage.pushers import Pusher, PusherStore, RoomNames
from storage.receipts import Receipt
from storage.rooms import RoomStore

logger = logging.getLogger(__name__)

INITIAL_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 60.0
# Attempts per push before it is dropped (1 + 2 + 4 + 8 + 16 s of waiting).
MAX_ATTEMPTS: Final = 6
# Pushes waiting for one pusher; beyond this the oldest are dropped.
MAX_QUEUED: Final = 100
TIMEOUT: Final = aiohttp.ClientTimeout(total=30, connect=10)
# Count every notification row written so far.
_ALL_STREAM: Final = 2**63 - 1
# Looser than the aliases this server accepts, as other servers may differ.
_ALIAS: Final = re.compile(r"^#.*:.+$")
_EMPTY_ROOM: Final = "Empty Room"

LaneKey = tuple[str, str, str]


def tweaks_of(actions: Sequence[Any]) -> dict[str, Any]:
    """The set_tweak actions as a tweaks object (a tweak without a value is true)."""
    return {
        action["set_tweak"]: action.get("value", True)
        for action in actions
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str)
    }


def priority(event: Event, tweaks: Mapping[str, Any]) -> str:
    """High when the phone should make itself heard (a highlight or a sound),
    or may have to (an encrypted event, whose rules the phone evaluates)."""
    if event.type == "m.room.encrypted" or tweaks.get("highlight") or tweaks.get("sound"):
        return "high"
    return "low"


@attrs.frozen
class RoomContext:
    """What a push tells about the room of an event, for every recipient."""

    names: RoomNames
    # Joined and invited members, and the first few of them (user id, name).
    member_count: int
    first_members: tuple[tuple[str, str], ...]

    @property
    def alias(self) -> str | None:
        alias = self.names.canonical_alias
        return alias if alias and _ALIAS.match(alias) else None

    def room_name(self, user_id: str, invited: bool) -> str | None:
        """The room's name as `user_id` would read it: m.room.name, the
        canonical alias, or its other members ("A and B", "A and 2 others");
        none for a room with one other member (the sender's name says it)
        or for an invite."""
        if self.names.name:
            return self.names.name
        if self.alias:
            return self.alias
        if invited:
            return None
        # The recipient is one of the members (joined: invitees returned above).
        others = [name for member, name in self.first_members if member != user_id]
        other_count = max(0, self.member_count - 1)
        if other_count == 0:
            return _EMPTY_ROOM
        if other_count == 1:
            return None
        if other_count == 2:
            return f"{others[0]} and {others[1]}"
        return f"{others[0]} and {other_count - 1} others"


def notification_payload(
    event: Event,
    pusher: Pusher,
    *,
    user_id: str,
    tweaks: Mapping[str, Any],
    badge: int,
    room: RoomContext | None,
    include_content: bool,
) -> dict[str, Any]:
    """The body of a /notify request for one pusher. event_id_only pushers
    get the ids, priority and counts only (no tweaks, as Synapse)."""
    device = _device(pusher)
    notification: dict[str, Any] = {
        "event_id": event.event_id,
        "room_id": event.room_id,
        "prio": priority(event, tweaks),
        "counts": {"unread": badge},
        "devices": [device],
    }
    if pusher.data.get("format") == EVENT_ID_ONLY or room is None:
        return {"notification": notification}
    if tweaks:
        device["tweaks"] = dict(tweaks)
    # The deprecated name of event_id: Synapse still sends it in full pushes,
    # and push gateways read it.
    notification["id"] = event.event_id
    notification["type"] = event.type
    notification["sender"] = event.sender
    invited = False
    if event.type == "m.room.member" and event.state_key is not None:
        notification["membership"] = event.content.get("membership")
        notification["user_is_target"] = event.state_key == user_id
        invited = event.state_key == user_id and event.content.get("membership") == "invite"
    if include_content and event.content:
        notification["content"] = event.content
    notification["sender_display_name"] = room.names.sender_display_name or event.sender
    room_name = room.room_name(user_id, invited)
    if room_name:
        notification["room_name"] = room_name
    if room.alias:
        notification["room_alias"] = room.alias
    return {"notification": notification}


def badge_payload(pusher: Pusher, badge: int) -> dict[str, Any]:
    """The body of a /notify request that only updates the app's badge (sent
    when the user reads: no event, as Synapse sends it)."""
    notification = {"id": "", "type": None, "sender": "", "counts": {"unread": badge}}
    return {"notification": {**notification, "devices": [_device(pusher)]}}


def _device(pusher: Pusher) -> dict[str, Any]:
    return {
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"},
    }


@attrs.frozen
class _Push:
    """One request to send: `done` is set once it was sent or given up."""

    event_id: str
    body: dict[str, Any]
    done: asyncio.Future[None]

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


@attrs.define
class _Lane:
    """One pusher's queue of pushes and the task sending it."""

    pusher: Pusher
    queue: deque[_Push] = attrs.field(factory=deque)
    task: asyncio.Task[None] | None = None


class PushSender:
    def __init__(
        self,
        pushers: PusherStore,
        push_store: PushStore,
        rooms: RoomStore,
        receipts: ReadPositions,
        *,
        include_content: bool,
        active_users: Callable[[Collection[str]], Awaitable[set[str]]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pushers = pushers
        self._push_store = push_store
        self._rooms = rooms
        self._receipts = receipts
        self._include_content = include_content
        # Users with a client in use get no pushes (config: suppress_when_active):
        # of these users, those syncing now (in a deployment, on any process).
        self._active_users = active_users
        self._lanes: dict[LaneKey, _Lane] = {}
        self._preparing: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        # None: the system's trust store (config: outbound_tls_ca_file).
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True

    def push_event(
        self, event: Event, notifications: Sequence[NewNotification]
    ) -> asyncio.Future[None]:
        """Push the event to these notified users' pushers, in the background:
        the future is done once every push was sent or given up (or could
        not be prepared, which is logged)."""
        task = asyncio.create_task(self._prepare(event, notifications))
        self._preparing.add(task)
        task.add_done_callback(self._preparing.discard)
        return task

    def receipts_stored(self, receipts: Sequence[Receipt]) -> None:
        """A user who reads may have fewer unread rooms, so their devices get
        the new badge count (as Synapse does), once per user of the batch."""
        readers = {r.user_id for r in receipts if r.receipt_type in (READ, READ_PRIVATE)}
        for user_id in sorted(readers):
            task = asyncio.create_task(self._push_badge(user_id))
            self._preparing.add(task)
            task.add_done_callback(self._preparing.discard)

    async def _push_badge(self, user_id: str) -> None:
        try:
            pushers = (await self._pushers.for_users([user_id])).get(user_id)
            if not pushers:
                return
            badge = await self._badge(user_id)
            for pusher in pushers:
                self._enqueue(pusher, "badge", badge_payload(pusher, badge))
        except Exception:
            logger.exception("pushing the badge of %s failed", user_id)

    async def _prepare(self, event: Event, notifications: Sequence[NewNotification]) -> None:
        """Queue the event's pushes and wait until each was sent or given up."""
        queued: list[asyncio.Future[None]] = []
        try:
            if notifications and self._active_users is not None:
                active = await self._active_users({n.user_id for n in notifications})
                notifications = [n for n in notifications if n.user_id not in active]
            if not notifications:
                return
            pushers = await self._pushers.for_users(n.user_id for n in notifications)
            if not pushers:
                return
            full = any(p.data.get("format") != EVENT_ID_ONLY for ps in pushers.values() for p in ps)
            room = await self._room_context(event) if full else None
            for notification in notifications:
                user_id = notification.user_id
                if user_id not in pushers:
                    continue
                tweaks = tweaks_of(json.loads(notification.actions_json))
                badge = await self._badge(user_id)
                for pusher in pushers[user_id]:
                    body = notification_payload(
                        event,
                        pusher,
                        user_id=user_id,
                        tweaks=tweaks,
                        badge=badge,
                        room=room,
                        include_content=self._include_content,
                    )
                    queued.append(self._enqueue(pusher, event.event_id, body))
        except Exception:
            logger.exception("preparing pushes for %s failed", event.event_id)
        if queued:
            await asyncio.gather(*queued)

    async def _room_context(self, event: Event) -> RoomContext:
        names = await self._pushers.room_names(event.room_id, event.sender)
        if names.name or (names.canonical_alias and _ALIAS.match(names.canonical_alias)):
            return RoomContext(names, 0, ())
        # Naming by members needs the first three: at most one is the recipient.
        count, first = await self._pushers.first_members(event.room_id, 3)
        return RoomContext(names, count, tuple(first))

    async def _badge(self, user_id: str) -> int:
        """The user's pending invites plus their joined rooms with unread
        notifications (Synapse's badge, grouped by room)."""
        joined = await self._rooms.rooms_for_user(user_id, "join")
        invited = await self._rooms.rooms_for_user(user_id, "invite")
        positions = await self._receipts.thread_read_streams(user_id, joined)
        read = {room: read_up_to(positions.get(room, {})) for room in joined}
        counts = await self._push_store.unread_counts(user_id, read, _ALL_STREAM)
        return len(invited) + len({c.room_id for c in counts if c.notifications})

    def _enqueue(self, pusher: Pusher, event_id: str, body: dict[str, Any]) -> asyncio.Future[None]:
        key = (pusher.user_id, pusher.app_id, pusher.pushkey)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(pusher)
        lane.pusher = pusher
        push = _Push(event_id, body, asyncio.get_running_loop().create_future())
        lane.queue.append(push)
        if len(lane.queue) > MAX_QUEUED:
            dropped = lane.queue.popleft()
            dropped.finish()
            logger.warning("push queue of %s/%s full: dropped %s", *key[:2], dropped.event_id)
        if lane.task is None:
            lane.task = asyncio.create_task(self._run(key, lane))
        return push.done

    async def _run(self, key: LaneKey, lane: _Lane) -> None:
        """Send a pusher's queue in order until it is empty."""
        push = None
        try:
            while lane.queue:
                push = lane.queue.popleft()
                pusher = lane.pusher
                rejected = await self._send(pusher, push.event_id, push.body)
                push.finish()
                if pusher.pushkey in rejected:
                    logger.info("pushkey of %s/%s rejected: removing its pusher", *key[:2])
                    await self._pushers.delete(pusher.user_id, pusher.app_id, pusher.pushkey)
                    self._give_up(lane)
        except Exception:
            # Given up, as a push whose retries ran out (a cancelled one is
            # not: it was not sent).
            logger.exception("pushing to %s/%s failed", *key[:2])
            if push is not None:
                push.finish()
            self._give_up(lane)
        finally:
            # No await since the queue was found empty: nothing was added since.
            del self._lanes[key]

    @staticmethod
    def _give_up(lane: _Lane) -> None:
        while lane.queue:
            lane.queue.popleft().finish()

    async def _send(self, pusher: Pusher, event_id: str, body: dict[str, Any]) -> list[str]:
        """POST one push, retrying with backoff; the pushkeys the gateway rejected."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=TIMEOUT, connector=aiohttp.TCPConnector(ssl=self._ssl)
            )
        url = pusher.data["url"]
        delay = INITIAL_BACKOFF_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self._session.post(url, json=body) as resp:
                    if 200 <= resp.status < 300:
                        return _rejected(await resp.read())
                    logger.warning("push of %s to %s: HTTP %d", event_id, url, resp.status)
            except (aiohttp.ClientError, TimeoutError) as e:
                logger.warning("push of %s to %s failed: %r", event_id, url, e)
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        logger.warning("giving up pushing %s to %s", event_id, url)
        return []

    async def stop(self) -> None:
        """At shutdown or when the lease is lost: pushes not yet sent are
        dropped here (their events are past no stored position, so the
        next holder of the lease pushes them)."""
        tasks = [*self._preparing, *(lane.task for lane in self._lanes.values() if lane.task)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None


def _rejected(body: bytes) -> list[str]:
    """The `rejected` pushkeys of a gateway's answer (anything unreadable: none)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return []
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(rejected, list):
        return []
    return [key for key in rejected if isinstance(key, str)]
