"""Persisting events other servers sent us, in the room's write transaction.

Unlike a local event, a received event may not take its place at the head of
the room: a rejected or soft-failed event is stored but neither becomes a
forward extremity nor changes the current state, and a soft-failed one is
hidden from clients (outlier = TRUE, see schema/0019_federation_inbound.sql).
An event stored earlier as an outlier (an auth event, a state event fetched
for a gap) is upgraded in place when it arrives again with its state.
"""

from __future__ import annotations

import asyncpg

from storage.events import NewEvent, _body_text, _relation, event_values, state_delta_values

_PERSIST_RECEIVED = """
WITH new_event AS (
    INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts,
        stream_ordering, json, rejected_reason, state_group, replaces_state, redacts,
        rel_type, relates_to, outlier, soft_failed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)
    ON CONFLICT (event_id) DO UPDATE
    SET stream_ordering = EXCLUDED.stream_ordering, rejected_reason = EXCLUDED.rejected_reason,
        state_group = EXCLUDED.state_group, replaces_state = EXCLUDED.replaces_state,
        outlier = EXCLUDED.outlier, soft_failed = EXCLUDED.soft_failed,
        rel_type = EXCLUDED.rel_type, relates_to = EXCLUDED.relates_to
    WHERE events.state_group IS NULL
), prev_edges AS (
    INSERT INTO event_edges (event_id, prev_event_id) SELECT $1, unnest($17::text[])
    ON CONFLICT DO NOTHING
), auth_edges AS (
    INSERT INTO event_auth (event_id, auth_id) SELECT $1, unnest($18::text[])
    ON CONFLICT DO NOTHING
), old_extremities AS (
    DELETE FROM forward_extremities
    WHERE $19 AND room_id = $2 AND event_id = ANY($17::text[])
), new_extremity AS (
    INSERT INTO forward_extremities (room_id, event_id) SELECT $2, $1 WHERE $19
    ON CONFLICT DO NOTHING
), state_now AS (
    INSERT INTO current_state (room_id, type, state_key, event_id, membership)
    SELECT $2, t, k, e, m FROM unnest($20::text[], $21::text[], $22::text[], $23::text[])
        AS u(t, k, e, m)
    ON CONFLICT (room_id, type, state_key) DO UPDATE
    SET event_id = EXCLUDED.event_id, membership = EXCLUDED.membership
), state_gone AS (
    DELETE FROM current_state c USING unnest($24::text[], $25::text[]) AS g(t, k)
    WHERE c.room_id = $2 AND c.type = g.t AND c.state_key = g.k
), redaction AS (
    INSERT INTO redactions (redacted_id, redaction_id) SELECT $26, $1 WHERE $26::text IS NOT NULL
    ON CONFLICT DO NOTHING
), search AS (
    INSERT INTO event_search (event_id, room_id, sender, key, vector, stream_ordering,
                              origin_server_ts)
    SELECT $1, $2, $5, $3, to_tsvector('simple', $27), $8, $7 WHERE $27::text IS NOT NULL
    ON CONFLICT DO NOTHING
)
UPDATE rooms SET head_stream = greatest(head_stream, $8) WHERE room_id = $2
"""


async def persist_received(
    conn: asyncpg.Connection,
    new: NewEvent,
    *,
    soft_failed: bool,
    historical: bool = False,
) -> None:
    """Write a received event with its edges, and, when it is live (neither
    rejected nor soft-failed), make it a forward extremity in place of its
    prev events and apply `new.current_state_delta` and `new.removed_state`
    (keys state resolution dropped) to the current state.

    A `historical` event (backfilled: older than what the room's head is
    built on) never becomes a forward extremity; the caller gives it no
    current state delta.
    """
    event = new.event
    live = new.rejected_reason is None and not soft_failed
    delta = list((new.current_state_delta or {}).items()) if live else []
    gone = new.removed_state if live else ()
    await conn.execute(
        _PERSIST_RECEIVED,
        *event_values(new, _relation(event) if live else (None, None)),
        soft_failed,
        list(event.prev_event_ids),
        list(event.auth_event_ids),
        live and not historical,
        *state_delta_values(delta),
        [k[0] for k in gone],
        [k[1] for k in gone],
        event.redacts if live and new.redacts_valid else None,
        _body_text(event) if live else None,
    )


async def historical_stream_ordering(conn: asyncpg.Connection) -> int:
    """A stream position for a backfilled event: negative, from the outliers'
    sequence (schema/0020_federation_membership.sql), so that history older
    than the room's head never shows up in any stream reader's range (/sync
    sees nothing new) while /messages orders it by depth."""
    return -int(await conn.fetchval("SELECT nextval('outlier_stream')"))
