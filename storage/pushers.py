"""Pushers, the room details a push shows, and the notification list.

The notification rows themselves are written by storage/push.py; this module
only reads them, for GET /notifications.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncpg
import attrs

from storage.shared_caches import SharedCaches


@attrs.frozen
class Pusher:
    user_id: str
    app_id: str
    pushkey: str
    device_id: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: Mapping[str, Any]
    # Milliseconds.
    pushkey_ts: int


@attrs.frozen
class RoomNames:
    """What names a room and an event's sender in a push, from current state."""

    name: str | None
    canonical_alias: str | None
    sender_display_name: str | None


@attrs.frozen
class StoredNotification:
    room_id: str
    event_id: str
    stream_ordering: int
    thread_id: str
    actions_json: str
    ts: int


_COLUMNS = """user_id, app_id, pushkey, device_id, kind, app_display_name,
              device_display_name, profile_tag, lang, data, pushkey_ts"""


def _pusher(row: asyncpg.Record) -> Pusher:
    return Pusher(
        row["user_id"],
        row["app_id"],
        row["pushkey"],
        row["device_id"],
        row["kind"],
        row["app_display_name"],
        row["device_display_name"],
        row["profile_tag"],
        row["lang"],
        json.loads(row["data"]),
        row["pushkey_ts"],
    )


_ROOM_NAMES = """
SELECT max(e.json::json -> 'content' ->> 'name') FILTER (WHERE cs.type = 'm.room.name') AS name,
       max(e.json::json -> 'content' ->> 'alias')
           FILTER (WHERE cs.type = 'm.room.canonical_alias') AS alias,
       max(e.json::json -> 'content' ->> 'displayname')
           FILTER (WHERE cs.type = 'm.room.member') AS sender_name
FROM current_state cs JOIN events e ON e.event_id = cs.event_id
WHERE cs.room_id = $1
  AND (cs.type, cs.state_key) IN (('m.room.name', ''), ('m.room.canonical_alias', ''),
                                  ('m.room.member', $2))
"""


# GET /notifications: the user's own rows that notify, merged in stream order
# with the common rows of the rooms they were joined to when they were sent
# (their membership spans), that they did not send and have no own row for.
# Each side is an index range read newest first, at most `limit` long.
_NOTIFICATIONS = """
(SELECT room_id, event_id, stream_ordering, thread_id, actions, ts
 FROM event_push_notifications
 WHERE user_id = $1 AND notify AND ($2::bigint IS NULL OR stream_ordering < $2)
   AND (NOT $3 OR highlight)
 ORDER BY stream_ordering DESC LIMIT $4)
UNION ALL
(SELECT c.room_id, c.event_id, c.stream_ordering, c.thread_id, c.actions, c.ts
 FROM push_member_spans s
 CROSS JOIN LATERAL (
     SELECT * FROM event_push_common c
     WHERE c.room_id = s.room_id AND c.stream_ordering > s.joined_at
       AND (s.left_at IS NULL OR c.stream_ordering < s.left_at)
       AND ($2::bigint IS NULL OR c.stream_ordering < $2)
       AND (NOT $3 OR c.highlight) AND c.sender <> $1
       AND NOT EXISTS (
           SELECT 1 FROM event_push_notifications o
           WHERE o.user_id = $1 AND o.room_id = c.room_id AND o.thread_id = c.thread_id
             AND o.stream_ordering = c.stream_ordering)
     ORDER BY c.stream_ordering DESC LIMIT $4
 ) c
 WHERE s.user_id = $1 AND ($2::bigint IS NULL OR s.joined_at < $2)
 ORDER BY c.stream_ordering DESC LIMIT $4)
ORDER BY stream_ordering DESC LIMIT $4
"""


# Users known to have no pusher, kept so that the events notifying them (most
# users, on a server whose users are on the web) look no pusher up.
_WITHOUT_PUSHERS_KEPT = 100_000
# That knowledge's name among the caches shared by a deployment.
_WITHOUT_PUSHERS_CACHE = "users_without_pushers"


class PusherStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Only `put` adds a pusher, and it forgets its user here (and, in a
        # deployment, in the other processes); a deletion (a device's, by
        # cascade, too) can only make an entry truer.
        self._without: OrderedDict[str, None] = OrderedDict()
        # Moved by `put` before and after its write: a lookup that overlapped
        # one learns nothing from its answer.
        self._puts = 0
        self._shared: SharedCaches | None = None
        self._put_listeners: list[Callable[[str], None]] = []

    def add_put_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(user_id)` before a user's pusher is written, and when
        another process of a deployment wrote one (the push notifier then
        evaluates that user's notifications individually)."""
        self._put_listeners.append(listener)

    async def for_user(self, user_id: str) -> list[Pusher]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = $1 ORDER BY app_id, pushkey",
            user_id,
        )
        return [_pusher(r) for r in rows]

    async def for_users(self, user_ids: Iterable[str]) -> dict[str, list[Pusher]]:
        """The pushers of these users, by user (users without any: absent)."""
        wanted = [u for u in dict.fromkeys(user_ids) if u not in self._without]
        if not wanted:
            return {}
        puts = self._puts
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM pushers WHERE user_id = ANY($1::text[])", wanted
        )
        found: dict[str, list[Pusher]] = {}
        for row in rows:
            found.setdefault(row["user_id"], []).append(_pusher(row))
        if puts == self._puts:
            self._without.update((u, None) for u in wanted if u not in found)
            while len(self._without) > _WITHOUT_PUSHERS_KEPT:
                self._without.popitem(last=False)
        return found

    async def put(self, pusher: Pusher, *, remove_others: bool) -> None:
        """Create the user's pusher for its app id and pushkey, or update it
        (keeping the device it belongs to, as Synapse does: one device may edit
        another's pusher). With `remove_others`, other users' pushers with the
        same app id and pushkey are removed in the same transaction."""
        self._forget(pusher.user_id)
        try:
            await self._write(pusher, remove_others)
        finally:
            if self._shared is not None:
                self._shared.forget(_WITHOUT_PUSHERS_CACHE, pusher.user_id)
            else:
                self._forget(pusher.user_id)

    def share_invalidations(self, shared: SharedCaches) -> None:
        """In a deployment of several processes, a pusher added through one
        is known to the others at once (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register(_WITHOUT_PUSHERS_CACHE, self._forget, self._forget_all)

    def _forget(self, user_id: str) -> None:
        self._puts += 1
        self._without.pop(user_id, None)
        for listener in self._put_listeners:
            listener(user_id)

    def _forget_all(self) -> None:
        self._puts += 1
        self._without.clear()

    async def _write(self, pusher: Pusher, remove_others: bool) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if remove_others:
                await conn.execute(
                    "DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3",
                    pusher.app_id,
                    pusher.pushkey,
                    pusher.user_id,
                )
            await conn.execute(
                f"""INSERT INTO pushers ({_COLUMNS})
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET
                        kind = EXCLUDED.kind, app_display_name = EXCLUDED.app_display_name,
                        device_display_name = EXCLUDED.device_display_name,
                        profile_tag = EXCLUDED.profile_tag, lang = EXCLUDED.lang,
                        data = EXCLUDED.data, pushkey_ts = EXCLUDED.pushkey_ts""",
                pusher.user_id,
                pusher.app_id,
                pusher.pushkey,
                pusher.device_id,
                pusher.kind,
                pusher.app_display_name,
                pusher.device_display_name,
                pusher.profile_tag,
                pusher.lang,
                json.dumps(pusher.data, separators=(",", ":")),
                pusher.pushkey_ts,
            )

    async def delete(self, user_id: str, app_id: str, pushkey: str) -> bool:
        """Delete a user's pusher; False if there was none."""
        status = await self._pool.execute(
            "DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
            user_id,
            app_id,
            pushkey,
        )
        return status != "DELETE 0"

    # --- what a push shows ------------------------------------------------------

    async def room_names(self, room_id: str, sender: str) -> RoomNames:
        """The room's m.room.name and canonical alias, and the sender's
        display name: one query."""
        row = await self._pool.fetchrow(_ROOM_NAMES, room_id, sender)
        return RoomNames(row["name"], row["alias"], row["sender_name"])

    async def first_members(self, room_id: str, limit: int) -> tuple[int, list[tuple[str, str]]]:
        """The number of joined and invited members, and the first `limit` of
        them in the order their membership events were sent, as (user id,
        display name or user id): names a room that has no name or alias."""
        row = await self._pool.fetchrow(
            """WITH members AS (
                   SELECT cs.state_key, e.origin_server_ts,
                          coalesce(nullif(e.json::json -> 'content' ->> 'displayname', ''),
                                   cs.state_key) AS name
                   FROM current_state cs JOIN events e ON e.event_id = cs.event_id
                   WHERE cs.room_id = $1 AND cs.type = 'm.room.member'
                     AND cs.membership IN ('join', 'invite')
               ), first AS (
                   SELECT state_key, name FROM members
                   ORDER BY origin_server_ts, state_key LIMIT $2
               )
               SELECT (SELECT count(*) FROM members) AS total,
                      ARRAY(SELECT state_key FROM first) AS ids,
                      ARRAY(SELECT name FROM first) AS names""",
            room_id,
            limit,
        )
        return row["total"], list(zip(row["ids"], row["names"], strict=True))

    # --- GET /notifications -----------------------------------------------------

    async def notifications(
        self, user_id: str, before: int | None, limit: int, only_highlight: bool
    ) -> list[StoredNotification]:
        """The user's notifications before stream position `before` (None:
        from the newest), newest first."""
        rows = await self._pool.fetch(_NOTIFICATIONS, user_id, before, only_highlight, limit)
        return [
            StoredNotification(
                r["room_id"],
                r["event_id"],
                r["stream_ordering"],
                r["thread_id"],
                r["actions"],
                r["ts"],
            )
            for r in rows
        ]
