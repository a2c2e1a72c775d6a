"""Events and the room DAG: reading events back, and the one transaction that
persists a new event with its edges, state and side tables."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import attrs

from homeserver.events.event import Event, load_stored_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.events.topic import topic_search_text
from storage.database import now_ms
from storage.shared_caches import SharedCaches
from storage.state import LOCK_ROOM, StateKey, StateMap, StateStore

_EVENT_CACHE_SIZE = 50_000
# The event cache's name among the caches shared by a deployment.
_EVENTS_CACHE = "events"


class RoomExistsError(Exception):
    """A room with this id exists already."""


@attrs.frozen
class StoredEvent:
    event: Event
    stream_ordering: int
    state_group: int | None
    replaces_state: str | None
    rejected_reason: str | None
    txn_device_id: str | None
    txn_id: str | None


@attrs.frozen
class Extremity:
    event_id: str
    depth: int
    state_group: int | None


@attrs.frozen
class RoomHead:
    """Where new events of a room attach, as stored."""

    room_version: RoomVersion
    head_stream: int
    extremities: tuple[Extremity, ...]


@attrs.frozen
class NewEvent:
    """Everything the persist transaction writes for one event."""

    event: Event
    stream_ordering: int
    state_group: int | None
    replaces_state: str | None
    # Current state changes: key -> (event id, membership for m.room.member keys).
    current_state_delta: Mapping[StateKey, tuple[str, str | None]] | None
    redacts_valid: bool = False
    txn_device_id: str | None = None
    txn_id: str | None = None
    rejected_reason: str | None = None
    # Length of the delta chain behind state_group, when this event made a group.
    state_chain_length: int = 0
    # Current state keys that state resolution dropped (a fork merged).
    removed_state: tuple[StateKey, ...] = ()


# What `stored_event` reads from `events e JOIN rooms r`: other stores that
# select events their own way (storage/export.py) load them with the same two.
EVENT_COLUMNS = """e.event_id, e.room_id, r.room_version, e.json, e.stream_ordering,
    e.state_group, e.replaces_state, e.rejected_reason, e.txn_device_id, e.txn_id"""


def stored_event(row: asyncpg.Record) -> StoredEvent:
    room_version = KNOWN_ROOM_VERSIONS[row["room_version"]]
    event = load_stored_event(
        json.loads(row["json"]), room_version, row["event_id"], row["room_id"]
    )
    return StoredEvent(
        event,
        row["stream_ordering"],
        row["state_group"],
        row["replaces_state"],
        row["rejected_reason"],
        row["txn_device_id"],
        row["txn_id"],
    )


_PERSIST = """
WITH new_event AS (
    INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts,
        stream_ordering, json, rejected_reason, state_group, replaces_state, redacts,
        rel_type, relates_to, txn_device_id, txn_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
), prev_edges AS (
    INSERT INTO event_edges (event_id, prev_event_id) SELECT $1, unnest($18::text[])
), auth_edges AS (
    INSERT INTO event_auth (event_id, auth_id) SELECT $1, unnest($19::text[])
), old_extremities AS (
    DELETE FROM forward_extremities WHERE room_id = $2 AND event_id = ANY($18::text[])
), new_extremity AS (
    INSERT INTO forward_extremities (room_id, event_id) VALUES ($2, $1)
), state_now AS (
    INSERT INTO current_state (room_id, type, state_key, event_id, membership)
    SELECT $2, t, k, e, m FROM unnest($20::text[], $21::text[], $22::text[], $23::text[])
        AS u(t, k, e, m)
    ON CONFLICT (room_id, type, state_key) DO UPDATE
    SET event_id = EXCLUDED.event_id, membership = EXCLUDED.membership
), state_gone AS (
    DELETE FROM current_state c USING unnest($27::text[], $28::text[]) AS g(t, k)
    WHERE c.room_id = $2 AND c.type = g.t AND c.state_key = g.k
), remembered AS (
    -- Back in the room: a room forgotten earlier is remembered again.
    DELETE FROM room_forgotten WHERE $24::text IS NOT NULL AND user_id = $24 AND room_id = $2
), redaction AS (
    INSERT INTO redactions (redacted_id, redaction_id) SELECT $25, $1 WHERE $25::text IS NOT NULL
), search AS (
    INSERT INTO event_search (event_id, room_id, sender, key, vector, stream_ordering,
                              origin_server_ts)
    SELECT $1, $2, $5, $3, to_tsvector('simple', $26), $8, $7 WHERE $26::text IS NOT NULL
)
UPDATE rooms SET head_stream = $8 WHERE room_id = $2
"""


# Every event reachable through auth edges from the ids in $1 (one query).
AUTH_CHAIN_IDS = """WITH RECURSIVE chain(id) AS (
    SELECT auth_id FROM event_auth WHERE event_id = ANY($1)
    UNION
    SELECT a.auth_id FROM event_auth a JOIN chain c ON a.event_id = c.id
) SELECT id FROM chain"""


def pdu_json(event: Event) -> str:
    """An event's PDU as the events table stores it: compact JSON."""
    return json.dumps(event.pdu, ensure_ascii=False, separators=(",", ":"))


def event_values(new: NewEvent, relation: tuple[str | None, str | None]) -> tuple[Any, ...]:
    """$1 to $15 of the statements that persist a new or received event: the
    columns of its events row from event_id to relates_to, in that order."""
    event = new.event
    return (
        event.event_id,
        event.room_id,
        event.type,
        event.state_key,
        event.sender,
        event.depth,
        event.origin_server_ts,
        new.stream_ordering,
        pdu_json(event),
        new.rejected_reason,
        new.state_group,
        new.replaces_state,
        event.redacts,
        *relation,
    )


def state_delta_values(
    delta: Iterable[tuple[StateKey, tuple[str, str | None]]],
) -> tuple[list[str], list[str], list[str], list[str | None]]:
    """A current state delta as the four arrays (types, state keys, event ids,
    memberships) that the persist statements unnest into current_state."""
    delta = list(delta)
    return (
        [k[0] for k, _ in delta],
        [k[1] for k, _ in delta],
        [e for _, (e, _m) in delta],
        [m for _, (_e, m) in delta],
    )


async def current_state_ids(conn: asyncpg.Connection | asyncpg.Pool, room_id: str) -> StateMap:
    """A room's whole current state (inside its write transaction on `conn`)."""
    rows = await conn.fetch(
        "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room_id
    )
    return {(r["type"], r["state_key"]): r["event_id"] for r in rows}


def _body_text(event: Event) -> str | None:
    """What full-text search indexes: message bodies, room names and topics."""
    if event.type == "m.room.topic":
        return topic_search_text(event.content)
    key = {"m.room.message": "body", "m.room.name": "name"}.get(event.type)
    value = event.content.get(key) if key else None
    return value if isinstance(value, str) else None


def _relation(event: Event) -> tuple[str | None, str | None]:
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None, None
    rel_type, target = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(target, str):
        return rel_type, target
    return None, None


class EventStore:
    def __init__(self, pool: asyncpg.Pool, state: StateStore) -> None:
        self._pool = pool
        self._state = state
        self._cache: OrderedDict[str, StoredEvent] = OrderedDict()
        self._room_versions: dict[str, RoomVersion] = {}
        # Moved by every rewrite: a read that overlapped one does not cache
        # what it read (it may be the JSON from before the rewrite).
        self._rewrites = 0
        self._shared: SharedCaches | None = None

    async def get_events(
        self, event_ids: Iterable[str], conn: asyncpg.Connection | None = None
    ) -> dict[str, StoredEvent]:
        """The events that exist among `event_ids` (one query for the uncached ones)."""
        found: dict[str, StoredEvent] = {}
        missing = []
        for event_id in event_ids:
            cached = self._cache.get(event_id)
            if cached is None:
                missing.append(event_id)
            else:
                found[event_id] = cached
        if missing:
            rewrites = self._rewrites
            rows = await (conn or self._pool).fetch(
                f"""SELECT {EVENT_COLUMNS} FROM events e JOIN rooms r USING (room_id)
                    WHERE e.event_id = ANY($1)""",
                missing,
            )
            for row in rows:
                stored = stored_event(row)
                found[stored.event.event_id] = stored
                if rewrites == self._rewrites:
                    self._remember(stored)
        return found

    def _remember(self, stored: StoredEvent) -> None:
        self._cache[stored.event.event_id] = stored
        if len(self._cache) > _EVENT_CACHE_SIZE:
            self._cache.popitem(last=False)

    def forget_cached(self, event_id: str) -> None:
        """Drop the cached copy of an event whose stored JSON was rewritten
        (censored), here and, in a deployment, in the other processes."""
        if self._shared is not None:
            self._shared.forget(_EVENTS_CACHE, event_id)
        else:
            self._forget(event_id)

    def share_invalidations(self, shared: SharedCaches) -> None:
        self._shared = shared
        shared.register(_EVENTS_CACHE, self._forget, self._forget_all)

    def _forget(self, event_id: str) -> None:
        self._rewrites += 1
        self._cache.pop(event_id, None)

    def _forget_all(self) -> None:
        self._rewrites += 1
        self._cache.clear()

    async def redactions_of(self, event_ids: Iterable[str]) -> dict[str, str]:
        """{redacted event id: id of the first valid redaction of it}."""
        ids = list(event_ids)
        if not ids:
            return {}
        rows = await self._pool.fetch(
            """SELECT DISTINCT ON (d.redacted_id) d.redacted_id, d.redaction_id
               FROM redactions d JOIN events e ON e.event_id = d.redaction_id
               WHERE d.redacted_id = ANY($1)
               ORDER BY d.redacted_id, e.stream_ordering""",
            ids,
        )
        return {r["redacted_id"]: r["redaction_id"] for r in rows}

    async def room_version(self, room_id: str) -> RoomVersion | None:
        """A room's version never changes, so it is cached once known."""
        cached = self._room_versions.get(room_id)
        if cached is not None:
            return cached
        version = await self._pool.fetchval(
            "SELECT room_version FROM rooms WHERE room_id = $1", room_id
        )
        if version is None:
            return None
        self._room_versions[room_id] = KNOWN_ROOM_VERSIONS[version]
        return self._room_versions[room_id]

    async def current_state_ids(self, room_id: str) -> StateMap:
        return await current_state_ids(self._pool, room_id)

    async def current_state_event_id(
        self, room_id: str, event_type: str, state_key: str
    ) -> str | None:
        return await self._pool.fetchval(
            """SELECT event_id FROM current_state
               WHERE room_id = $1 AND type = $2 AND state_key = $3""",
            room_id,
            event_type,
            state_key,
        )

    @asynccontextmanager
    async def room_writer(self, room_id: str) -> AsyncIterator[RoomWriter]:
        """A transaction holding the room's advisory lock: one writer per room."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_ROOM, room_id)
            yield RoomWriter(conn, room_id, self)


class RoomWriter:
    """The write side of one room, valid inside `EventStore.room_writer`."""

    def __init__(self, conn: asyncpg.Connection, room_id: str, store: EventStore) -> None:
        self.conn = conn
        self.room_id = room_id
        self._store = store

    async def create_room(self, room_version: RoomVersion, creator: str) -> None:
        try:
            await self.conn.execute(
                """INSERT INTO rooms (room_id, room_version, creator, created_ts)
                   VALUES ($1, $2, $3, $4)""",
                self.room_id,
                room_version.identifier,
                creator,
                now_ms(),
            )
        except asyncpg.UniqueViolationError:
            raise RoomExistsError(self.room_id) from None

    async def prepare(
        self, keys: Iterable[StateKey], txn: tuple[str, str, str] | None
    ) -> tuple[RoomHead | None, str | None, StateMap]:
        """What a new event needs, in one round trip: the room's head, the event
        a retried transaction id already made (txn = sender, device, txn id),
        and the given keys of the current state."""
        keys = list(keys)
        sender, device, txn_id = txn or (None, None, None)
        row = await self.conn.fetchrow(
            """SELECT r.room_version, r.head_stream,
                  (SELECT json_agg(json_build_array(e.event_id, e.depth, e.state_group))
                   FROM forward_extremities f JOIN events e ON e.event_id = f.event_id
                   WHERE f.room_id = r.room_id) AS extremities,
                  (SELECT event_id FROM events WHERE $4::text IS NOT NULL
                   AND room_id = r.room_id AND sender = $4 AND txn_device_id = $5
                   AND txn_id = $6) AS earlier,
                  (SELECT json_agg(json_build_array(c.type, c.state_key, c.event_id))
                   FROM current_state c JOIN unnest($2::text[], $3::text[]) AS w(t, k)
                     ON c.type = w.t AND c.state_key = w.k
                   WHERE c.room_id = r.room_id) AS state
               FROM rooms r WHERE r.room_id = $1""",
            self.room_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
            sender,
            device,
            txn_id,
        )
        if row is None:
            return None, None, {}
        head = RoomHead(
            KNOWN_ROOM_VERSIONS[row["room_version"]],
            row["head_stream"],
            tuple(Extremity(*x) for x in json.loads(row["extremities"] or "[]")),
        )
        state = {(t, k): e for t, k, e in json.loads(row["state"] or "[]")}
        return head, row["earlier"], state

    async def auth_chain_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Every event reachable through auth edges from `event_ids` (one query)."""
        rows = await self.conn.fetch(AUTH_CHAIN_IDS, list(event_ids))
        return {r["id"] for r in rows}

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        return await self._store.get_events(event_ids, self.conn)

    async def state_of_group(self, group_id: int) -> StateMap:
        return await self._store._state.state_of_group(group_id, self.conn)

    async def add_state_group(
        self, prev_group: int | None, delta: Mapping[StateKey, str | None]
    ) -> tuple[int, int]:
        return await StateStore.add_group(self.conn, self.room_id, prev_group, delta)

    async def persist(self, new: NewEvent) -> None:
        """Write the event, its edges, the new extremities, state and side tables.

        One statement, so that the room's lock is held for as few round trips
        as possible: this is the heart of send throughput.
        """
        event = new.event
        member_key = ("m.room.member", event.state_key)
        rejoined = (new.current_state_delta or {}).get(member_key, (None, None))[1] in (
            "join",
            "invite",
            "knock",
        )
        text = _body_text(event) if new.rejected_reason is None else None
        await self.conn.execute(
            _PERSIST,
            *event_values(new, _relation(event)),
            new.txn_device_id,
            new.txn_id,
            list(event.prev_event_ids),
            list(event.auth_event_ids),
            *state_delta_values((new.current_state_delta or {}).items()),
            event.state_key if rejoined else None,
            event.redacts if new.redacts_valid else None,
            text,
            [k[0] for k in new.removed_state],
            [k[1] for k in new.removed_state],
        )

    async def ensure_room(self, room_version: RoomVersion, creator: str) -> None:
        """Record a room this server learnt of from another one (a join through
        it, an invite into it); a room already known is left as it is."""
        await self.conn.execute(
            """INSERT INTO rooms (room_id, room_version, creator, created_ts)
               VALUES ($1, $2, $3, $4) ON CONFLICT (room_id) DO NOTHING""",
            self.room_id,
            room_version.identifier,
            creator,
            now_ms(),
        )

    async def persist_outliers(
        self, events: Iterable[Event], stream_orderings: Iterable[int | None] | None = None
    ) -> None:
        """Store events known without their place in the room's DAG (no prev
        edges, no state, not extremities), with their auth edges; events
        already stored are left alone.

        An outlier that a user must see (an invite from another server) is
        given a stream position; the others take a negative one, out of every
        stream reader's range (schema/0020_federation_membership.sql).
        """
        events = list(events)
        if not events:
            return
        positions = list(stream_orderings or [None] * len(events))
        await self.conn.execute(
            """INSERT INTO events (event_id, room_id, type, state_key, sender, depth,
                   origin_server_ts, stream_ordering, json, outlier, redacts)
               SELECT u.id, $1, u.type, u.state_key, u.sender, u.depth, u.ts,
                      coalesce(u.pos, -nextval('outlier_stream')), u.json, TRUE, u.redacts
               FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                           $7::bigint[], $8::bigint[], $9::text[], $10::text[])
                   AS u(id, type, state_key, sender, depth, ts, pos, json, redacts)
               ON CONFLICT (event_id) DO NOTHING""",
            self.room_id,
            [e.event_id for e in events],
            [e.type for e in events],
            [e.state_key for e in events],
            [e.sender for e in events],
            [e.depth for e in events],
            [e.origin_server_ts for e in events],
            positions,
            [pdu_json(e) for e in events],
            [e.redacts for e in events],
        )
        edges = [(e.event_id, a) for e in events for a in e.auth_event_ids]
        await self.conn.execute(
            """INSERT INTO event_auth (event_id, auth_id)
               SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING""",
            [e for e, _ in edges],
            [a for _, a in edges],
        )

    async def reset_room_head(self) -> None:
        """Forget the room's current state and forward extremities: this server
        is about to rejoin it from the state another server gave."""
        await self.conn.execute("DELETE FROM current_state WHERE room_id = $1", self.room_id)
        await self.conn.execute("DELETE FROM forward_extremities WHERE room_id = $1", self.room_id)

    def remember(self, new: NewEvent) -> None:
        """After commit: cache the event as stored, so readers need no query."""
        self._store._remember(
            StoredEvent(
                new.event,
                new.stream_ordering,
                new.state_group,
                new.replaces_state,
                new.rejected_reason,
                new.txn_device_id,
                new.txn_id,
            )
        )
