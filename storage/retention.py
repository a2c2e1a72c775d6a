"""SQL of message retention and redaction purges (homeserver/retention/).

A purged event keeps its `events` row, with the redacted form as its JSON and
`content_purged` set (schema/0390_retention.sql): the room's DAG, state and
auth chains stay whole for federation. Every selection leaves out events
under a legal hold (`NOT_HELD_SQL`), and the purge itself checks again, so a
hold placed between the two still wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from storage.legal_holds import NOT_HELD_SQL

RETENTION_TYPE = "m.room.retention"


class RetentionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def room_policies(self, room_id: str | None = None) -> dict[str, dict[str, Any]]:
        """{room id: content of its current m.room.retention} (of one room, if given)."""
        rows = await self._pool.fetch(
            """SELECT c.room_id, e.json FROM current_state c
               JOIN events e ON e.event_id = c.event_id
               WHERE c.type = $1 AND c.state_key = ''
                 AND ($2::text IS NULL OR c.room_id = $2)""",
            RETENTION_TYPE,
            room_id,
        )
        policies: dict[str, dict[str, Any]] = {}
        for row in rows:
            content = json.loads(row["json"]).get("content")
            policies[row["room_id"]] = content if isinstance(content, dict) else {}
        return policies

    async def expired_batch(
        self,
        cutoffs: Sequence[tuple[str, int | None]],
        default_cutoff: int | None,
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[tuple[int, str]]:
        """Up to `limit` (origin_server_ts, event id) of unpurged, unheld
        non-state events sent before their room's cutoff, oldest first, after
        the key `after` (the last of the previous batch, so that held events
        and rooms with longer policies are passed over once per run, not once
        per batch): `cutoffs` for rooms with their own policy (None: nothing
        expires there), `default_cutoff` for the others."""
        bounds = [c for _, c in cutoffs if c is not None]
        if default_cutoff is not None:
            bounds.append(default_cutoff)
        if not bounds:
            return []
        after_ts, after_id = after if after is not None else (None, "")
        rows = await self._pool.fetch(
            f"""SELECT e.origin_server_ts, e.event_id FROM events e
                LEFT JOIN unnest($1::text[], $2::bigint[]) AS p(room_id, cutoff)
                  ON p.room_id = e.room_id
                WHERE e.state_key IS NULL AND NOT e.content_purged
                  AND e.origin_server_ts < $3
                  AND ($6::bigint IS NULL OR (e.origin_server_ts, e.event_id) > ($6, $7))
                  AND e.origin_server_ts
                      < (CASE WHEN p.room_id IS NULL THEN $4::bigint ELSE p.cutoff END)
                  AND {NOT_HELD_SQL}
                ORDER BY e.origin_server_ts, e.event_id LIMIT $5""",
            [r for r, _ in cutoffs],
            [c for _, c in cutoffs],
            max(bounds),
            default_cutoff,
            limit,
            after_ts,
            after_id,
        )
        return [(r["origin_server_ts"], r["event_id"]) for r in rows]

    async def redacted_batch(self, redacted_before: int, limit: int, after: str) -> list[str]:
        """Up to `limit` ids (in order, above `after`) of unpurged, unheld
        events with a valid redaction sent before `redacted_before`."""
        rows = await self._pool.fetch(
            f"""SELECT DISTINCT e.event_id FROM redactions d
                JOIN events r ON r.event_id = d.redaction_id
                JOIN events e ON e.event_id = d.redacted_id
                WHERE d.redacted_id > $3
                  AND r.origin_server_ts < $1 AND r.rejected_reason IS NULL
                  AND NOT e.content_purged AND {NOT_HELD_SQL}
                ORDER BY e.event_id LIMIT $2""",
            redacted_before,
            limit,
            after,
        )
        return [r["event_id"] for r in rows]

    async def purge(self, pruned: Mapping[str, str]) -> list[str]:
        """In one transaction, replace each event's JSON by its pruned text and
        drop what was extracted from its content (search text, relation, push
        notifications, expiry); the ids actually purged (held ones are not)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""UPDATE events e
                    SET json = v.json, rel_type = NULL, relates_to = NULL, content_purged = TRUE
                    FROM unnest($1::text[], $2::text[]) AS v(event_id, json)
                    WHERE e.event_id = v.event_id AND NOT e.content_purged AND {NOT_HELD_SQL}
                    RETURNING e.event_id""",
                list(pruned),
                list(pruned.values()),
            )
            purged = [r["event_id"] for r in rows]
            for table in (
                "event_search",
                "event_push_notifications",
                "event_push_common",
                "event_expiry",
            ):
                await conn.execute(f"DELETE FROM {table} WHERE event_id = ANY($1)", purged)
        return purged

    async def still_referenced(self, server_name: str, media_ids: Iterable[str]) -> set[str]:
        """The media ids of `server_name` that some unpurged event still names."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT r.media_id FROM event_media_refs r
               JOIN events e ON e.event_id = r.event_id
               WHERE r.server_name = $1 AND r.media_id = ANY($2) AND NOT e.content_purged""",
            server_name,
            list(media_ids),
        )
        return {r["media_id"] for r in rows}

    async def add_media_refs(self, event_id: str, refs: Iterable[tuple[str, str]]) -> None:
        """Record the (server name, media id) pairs an event's JSON names."""
        pairs = list(dict.fromkeys(refs))
        await self._pool.execute(
            """INSERT INTO event_media_refs (event_id, server_name, media_id)
               SELECT $1, s, m FROM unnest($2::text[], $3::text[]) AS u(s, m)
               ON CONFLICT DO NOTHING""",
            event_id,
            [s for s, _ in pairs],
            [m for _, m in pairs],
        )
