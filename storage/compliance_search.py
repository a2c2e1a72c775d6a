"""Compliance search: the full-text index of /search, over every room of the server."""

from __future__ import annotations

import asyncpg
import attrs


@attrs.frozen
class ComplianceScope:
    """What an administrator's search may match; None filters nothing."""

    tsquery: str
    sender: str | None = None
    room_id: str | None = None
    # origin_server_ts bounds: from_ts inclusive, to_ts exclusive.
    from_ts: int | None = None
    to_ts: int | None = None


# Newest first; `$6` is the stream position of the previous page's last hit.
_PAGE = """
    SELECT s.event_id, s.stream_ordering
    FROM event_search s, to_tsquery('simple', $1) AS q
    WHERE s.vector @@ q
      AND ($2::text IS NULL OR s.sender = $2)
      AND ($3::text IS NULL OR s.room_id = $3)
      AND ($4::bigint IS NULL OR s.origin_server_ts >= $4)
      AND ($5::bigint IS NULL OR s.origin_server_ts < $5)
      AND ($6::bigint IS NULL OR s.stream_ordering < $6)
      AND NOT EXISTS (SELECT 1 FROM redactions d WHERE d.redacted_id = s.event_id)
    ORDER BY s.stream_ordering DESC
    LIMIT $7
"""


class ComplianceSearchStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self, scope: ComplianceScope, *, before: int | None, limit: int
    ) -> list[tuple[str, int]]:
        """(event id, stream position) of up to `limit` matches older than `before`."""
        rows = await self._pool.fetch(
            _PAGE,
            scope.tsquery,
            scope.sender,
            scope.room_id,
            scope.from_ts,
            scope.to_ts,
            before,
            limit,
        )
        return [(r["event_id"], r["stream_ordering"]) for r in rows]
