"""State snapshots as chains of deltas (see schema/0002_rooms.sql)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping

import asyncpg

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

# A group whose chain gets longer than this is rewritten as a full snapshot,
# off the request path, so that reads walk a bounded number of deltas.
MAX_CHAIN_LENGTH = 100

# Serialises writers of one room across processes (see storage/events.py).
LOCK_ROOM = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

_CHAIN = """
WITH RECURSIVE chain(id, prev, n) AS (
    SELECT id, prev_group, 0 FROM state_groups WHERE id = $1
    UNION ALL
    SELECT g.id, g.prev_group, c.n + 1 FROM state_groups g JOIN chain c ON g.id = c.prev
)
"""


# The largest step down (in depth) from a new group to the ancestor it is
# stored against; it bounds the rows one change can write. A group at depth d
# is stored against the ancestor at depth d - min(lowbit(d), MAX_REBASE), as
# in a Fenwick tree: its chain then has about log2(MAX_REBASE) + d /
# MAX_REBASE groups.
MAX_REBASE = 1024

# `prev_group`'s chain from it down to the first group at or below the depth
# the new group (one deeper) is stored against: the groups above it with
# their entries (to merge), then that base (`stored_against`). The depth of a
# group written before depths were recorded is its chain length.
_BASE = """
WITH RECURSIVE target AS (
    SELECT d - LEAST(d & -d, $2) AS t
    FROM (SELECT COALESCE(depth, chain_length) + 1 AS d FROM state_groups WHERE id = $1) top
), chain(id, prev, depth, chain_length, n) AS (
    SELECT id, prev_group, COALESCE(depth, chain_length), chain_length, 0
    FROM state_groups WHERE id = $1
    UNION ALL
    SELECT g.id, g.prev_group, COALESCE(g.depth, g.chain_length), g.chain_length, c.n + 1
    FROM chain c JOIN state_groups g ON g.id = c.prev
    WHERE c.depth > (SELECT t FROM target)
)
SELECT c.id, c.depth, c.chain_length,
       (c.depth <= (SELECT t FROM target) OR c.prev IS NULL) AS stored_against,
       CASE WHEN c.depth > (SELECT t FROM target) AND c.prev IS NOT NULL THEN
           (SELECT json_agg(json_build_array(e.type, e.state_key, e.event_id))
            FROM state_group_entries e WHERE e.group_id = c.id)
       END AS entries
FROM chain c ORDER BY c.n
"""

# (group, type, state key) entries kept by `state_entries` (about 200 bytes each).
MAX_CACHED_ENTRIES = 200_000
_UNKNOWN = object()


class StateStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._entries: OrderedDict[tuple[int, str, str], str | None] = OrderedDict()

    async def state_of_group(
        self, group_id: int, conn: asyncpg.Connection | None = None
    ) -> StateMap:
        """The full state map of a group, merging its deltas (one query)."""
        rows = await (conn or self._pool).fetch(
            _CHAIN
            + """SELECT DISTINCT ON (e.type, e.state_key) e.type, e.state_key, e.event_id
                 FROM chain c JOIN state_group_entries e ON e.group_id = c.id
                 ORDER BY e.type, e.state_key, c.n""",
            group_id,
        )
        return {(r["type"], r["state_key"]): r["event_id"] for r in rows if r["event_id"]}

    async def state_entries(
        self, group_ids: Iterable[int], keys: Iterable[StateKey]
    ) -> dict[int, StateMap]:
        """Selected keys of many groups at once: {group: {key: event_id}}.

        A group's state never changes (compaction only rewrites how it is
        stored), so what was read is kept by (group, key), the most recently
        used `MAX_CACHED_ENTRIES`: a room's messages share its state group,
        so the visibility checks of /sync and sliding sync mostly hit."""
        groups = list(set(group_ids))
        wanted = list(dict.fromkeys(keys))
        cache = self._entries
        result: dict[int, StateMap] = {g: {} for g in groups}
        missing = []
        for g in groups:
            known = [(key, cache.get((g, *key), _UNKNOWN)) for key in wanted]
            if any(event_id is _UNKNOWN for _, event_id in known):
                missing.append(g)
                continue
            for key, event_id in known:
                cache.move_to_end((g, *key))
                if isinstance(event_id, str):
                    result[g][key] = event_id
        if missing:
            read = await self._read_entries(missing, wanted)
            for g, entries in read.items():
                result[g] = {key: event_id for key, event_id in entries.items() if event_id}
            while len(cache) > MAX_CACHED_ENTRIES:
                cache.popitem(last=False)
        return result

    async def _read_entries(
        self, groups: list[int], keys: list[StateKey]
    ) -> dict[int, dict[StateKey, str | None]]:
        """{group: {key: event id, None if not in its state}}, kept in the cache. The chain walk and the entries are index look-ups
        (LATERAL ... LIMIT 1), which the planner would otherwise answer by
        hashing both whole tables."""
        types, state_keys = zip(*keys, strict=True) if keys else ((), ())
        rows = await self._pool.fetch(
            """WITH RECURSIVE chain(start, id, prev, n) AS (
                   SELECT id, id, prev_group, 0 FROM state_groups WHERE id = ANY($1)
                   UNION ALL
                   SELECT c.start, g.id, g.prev_group, c.n + 1
                   FROM chain c CROSS JOIN LATERAL (
                       SELECT id, prev_group FROM state_groups WHERE id = c.prev LIMIT 1
                   ) g
               )
               SELECT DISTINCT ON (c.start, e.type, e.state_key)
                      c.start, e.type, e.state_key, e.event_id
               FROM chain c
               CROSS JOIN LATERAL unnest($2::text[], $3::text[]) AS w(type, state_key)
               CROSS JOIN LATERAL (
                   SELECT type, state_key, event_id FROM state_group_entries
                   WHERE group_id = c.id AND type = w.type AND state_key = w.state_key
                   LIMIT 1
               ) e
               ORDER BY c.start, e.type, e.state_key, c.n""",
            groups,
            list(types),
            list(state_keys),
        )
        read: dict[int, dict[StateKey, str | None]] = {g: dict.fromkeys(keys) for g in groups}
        for r in rows:
            read[r["start"]][(r["type"], r["state_key"])] = r["event_id"]
        for g, entries in read.items():
            for (t, k), event_id in entries.items():
                self._entries[(g, t, k)] = event_id
        return read

    @staticmethod
    async def add_group(
        conn: asyncpg.Connection,
        room_id: str,
        prev_group: int | None,
        delta: Mapping[StateKey, str | None],
    ) -> tuple[int, int]:
        """Write a group as `delta` over `prev_group`; return (id, chain length).

        The group is stored as a delta against the ancestor its depth names
        (`_BASE`), which is on `prev_group`'s own chain; the deltas in between
        are merged into the new one. Most groups are stored against their
        parent (a one-row delta), and about every other group takes a delta
        of a few more rows, so the rows written per change stay bounded
        (amortised, `log2(MAX_REBASE) / 2 + 1`), total storage grows linearly
        in the changes, and chains stay short without full snapshots.
        """
        base_id, depth, chain_length, merged = None, 0, 0, dict(delta)
        if prev_group is not None:
            rows = await conn.fetch(_BASE, prev_group, MAX_REBASE)
            merged = {}
            for row in rows:
                if row["stored_against"]:
                    base_id, chain_length = row["id"], row["chain_length"] + 1
                    break
                for t, k, e in json.loads(row["entries"] or "[]"):
                    merged.setdefault((t, k), e)
            merged.update(delta)
            depth = rows[0]["depth"] + 1
            if base_id is None:
                # The walk ran off a chain without a base: against the parent.
                base_id, chain_length, merged = prev_group, rows[0]["chain_length"] + 1, dict(delta)
        group_id = await conn.fetchval(
            """INSERT INTO state_groups (room_id, prev_group, chain_length, depth)
               VALUES ($1, $2, $3, $4) RETURNING id""",
            room_id,
            base_id,
            chain_length,
            depth,
        )
        if merged:
            await conn.copy_records_to_table(
                "state_group_entries",
                records=[(group_id, t, k, e) for (t, k), e in merged.items()],
                columns=["group_id", "type", "state_key", "event_id"],
            )
        return group_id, chain_length

    async def compact(self, room_id: str, group_id: int) -> None:
        """Rewrite a group as a full snapshot; its meaning does not change.

        The groups built on it get shorter chains, and their recorded chain
        lengths are lowered to match, so they do not ask for compaction again.
        It holds the room's lock: a group added meanwhile would read a stale
        chain length from its parent and pass it on to its own children.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_ROOM, room_id)
            row = await conn.fetchrow(
                "SELECT prev_group, chain_length FROM state_groups WHERE id = $1 FOR UPDATE",
                group_id,
            )
            if row is None or row["prev_group"] is None:
                return
            state = await self.state_of_group(group_id, conn)
            await conn.execute("DELETE FROM state_group_entries WHERE group_id = $1", group_id)
            await conn.copy_records_to_table(
                "state_group_entries",
                records=[(group_id, t, k, e) for (t, k), e in state.items()],
                columns=["group_id", "type", "state_key", "event_id"],
            )
            await conn.execute(
                "UPDATE state_groups SET prev_group = NULL, chain_length = 0 WHERE id = $1",
                group_id,
            )
            await conn.execute(
                """WITH RECURSIVE built_on(id) AS (
                       SELECT id FROM state_groups WHERE prev_group = $1
                       UNION ALL
                       SELECT g.id FROM state_groups g JOIN built_on b ON g.prev_group = b.id
                   )
                   UPDATE state_groups SET chain_length = chain_length - $2
                   WHERE id IN (SELECT id FROM built_on)""",
                group_id,
                row["chain_length"],
            )
