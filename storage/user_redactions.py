"""The admin jobs that redact all of a user's events (schema/0410): their
rows, and the events each job redacts. Each names the process running it
(schema/0592, storage/job_runners.py), so that in a deployment a process
that starts resumes only the jobs no live process runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import attrs

from storage.database import now_ms
from storage.job_runners import RUNNER_GONE, left_over

UNFINISHED = ("scheduled", "active")


@attrs.frozen
class RedactJob:
    redact_id: str
    user_id: str
    admin_id: str
    rooms: tuple[str, ...]
    reason: str | None
    max_per_room: int
    after_ts: int | None
    before_ts: int | None
    status: str
    total: int
    redacted: int
    failed_redactions: dict[str, str]
    error: str | None


def _job(row: asyncpg.Record) -> RedactJob:
    values: dict[str, Any] = dict(row)
    values["rooms"] = tuple(values["rooms"])
    values["failed_redactions"] = json.loads(values["failed_redactions"])
    del values["created_ts"], values["updated_ts"], values["runner"]
    return RedactJob(**values)


class UserRedactionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, job: RedactJob, runner: str | None) -> None:
        now = now_ms()
        await self._pool.execute(
            """INSERT INTO user_redactions (redact_id, user_id, admin_id, rooms, reason,
                   max_per_room, after_ts, before_ts, status, created_ts, updated_ts, runner)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)""",
            job.redact_id,
            job.user_id,
            job.admin_id,
            list(job.rooms),
            job.reason,
            job.max_per_room,
            job.after_ts,
            job.before_ts,
            job.status,
            now,
            runner,
        )

    async def get(self, redact_id: str) -> RedactJob | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM user_redactions WHERE redact_id = $1", redact_id
        )
        return None if row is None else _job(row)

    async def take_left_over(self, runner: str | None) -> list[RedactJob]:
        """The unfinished jobs no live process runs (this process's from an
        earlier run, and those of processes that are gone), now named as
        this one's, oldest first. Two processes starting at once cannot both
        take a job: the second's update sees the first's name on it."""
        rows = await self._pool.fetch(
            f"""UPDATE user_redactions SET runner = $2
                WHERE status = ANY($1::text[]) AND {left_over("$2")}
                RETURNING *""",
            list(UNFINISHED),
            runner,
        )
        return _oldest_first(rows)

    async def take_orphaned(self, runner: str) -> list[RedactJob]:
        """The unfinished jobs of processes of the deployment that are gone
        (never this one's: those run here), now named as this one's, oldest
        first; as `take_left_over`, one process only takes each."""
        rows = await self._pool.fetch(
            f"""UPDATE user_redactions SET runner = $2
                WHERE status = ANY($1::text[]) AND runner <> $2 AND {RUNNER_GONE}
                RETURNING *""",
            list(UNFINISHED),
            runner,
        )
        return _oldest_first(rows)

    async def started(self, redact_id: str, total: int) -> None:
        await self._pool.execute(
            """UPDATE user_redactions SET status = 'active', total = $2, updated_ts = $3
               WHERE redact_id = $1""",
            redact_id,
            total,
            now_ms(),
        )

    async def progress(self, redact_id: str, redacted: int, failed: dict[str, str]) -> None:
        """Add one batch's outcome to the job's counts."""
        await self._pool.execute(
            """UPDATE user_redactions SET redacted = redacted + $2,
                   failed_redactions = failed_redactions || $3::jsonb, updated_ts = $4
               WHERE redact_id = $1""",
            redact_id,
            redacted,
            json.dumps(failed),
            now_ms(),
        )

    async def finish(self, redact_id: str, status: str, error: str | None = None) -> None:
        await self._pool.execute(
            """UPDATE user_redactions SET status = $2, error = $3, updated_ts = $4
               WHERE redact_id = $1""",
            redact_id,
            status,
            error,
            now_ms(),
        )

    async def rooms_of(self, user_id: str) -> list[str]:
        """Every room the user ever had a membership event in (a sender
        of events in a room has joined it), from the membership index."""
        rows = await self._pool.fetch(
            """SELECT DISTINCT room_id FROM events
               WHERE type = 'm.room.member' AND state_key = $1 ORDER BY room_id""",
            user_id,
        )
        return [r["room_id"] for r in rows]

    async def redactable(
        self,
        user_id: str,
        room_ids: Sequence[str],
        *,
        per_room: int,
        after_ts: int | None,
        before_ts: int | None,
    ) -> list[tuple[str, str]]:
        """(room, event id) of the user's events a job redacts, newest first
        in each room, at most `per_room` per room: the events clients show
        (not rejected, outliers or soft-failed), not redacted yet. Of state,
        only joins (their display name and avatar), as Synapse: redacting the
        rest would change how the room works. Redactions are left alone."""
        rows = await self._pool.fetch(
            """SELECT p.room_id, p.event_id FROM unnest($2::text[]) AS r(room_id)
               CROSS JOIN LATERAL (
                   SELECT e.room_id, e.event_id FROM events e
                   WHERE e.room_id = r.room_id AND e.sender = $1
                     AND NOT e.outlier AND e.rejected_reason IS NULL
                     AND e.type <> 'm.room.redaction'
                     AND (e.state_key IS NULL OR (e.type = 'm.room.member'
                          AND e.json::jsonb -> 'content' ->> 'membership' = 'join'))
                     AND ($4::bigint IS NULL OR e.origin_server_ts >= $4)
                     AND ($5::bigint IS NULL OR e.origin_server_ts <= $5)
                     AND NOT EXISTS (SELECT 1 FROM redactions d WHERE d.redacted_id = e.event_id)
                   ORDER BY e.stream_ordering DESC LIMIT $3
               ) p""",
            user_id,
            list(room_ids),
            per_room,
            after_ts,
            before_ts,
        )
        return [(r["room_id"], r["event_id"]) for r in rows]


def _oldest_first(rows: Sequence[asyncpg.Record]) -> list[RedactJob]:
    """Jobs taken over, in the order they were asked for."""
    return [_job(r) for r in sorted(rows, key=lambda r: (r["created_ts"], r["redact_id"]))]
