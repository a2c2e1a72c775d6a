"""The admin API's background room deletes and history purges (schema/0591):
their status, readable by every process of a deployment.

A task names the database session of the process running it (`runner`); a
task still running whose runner has no session any more (the process died)
is marked failed before any read, so it neither shows as running forever nor
blocks a new delete of its room.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import attrs

from storage.database import now_ms
from storage.job_runners import RUNNER_GONE

RUNNING = ("shutting_down", "purging", "active")
INTERRUPTED = "interrupted: the process running it stopped"


@attrs.frozen
class RoomTask:
    task_id: str
    kind: str
    room_id: str
    status: str
    error: str | None
    result: dict[str, Any]


def _task(row: asyncpg.Record) -> RoomTask:
    return RoomTask(
        row["task_id"],
        row["kind"],
        row["room_id"],
        row["status"],
        row["error"],
        json.loads(row["result"]),
    )


_COLUMNS = "task_id, kind, room_id, status, error, result"

# Running tasks of processes that have no session left.
_REAP = f"""
UPDATE admin_room_tasks SET status = 'failed', error = $2, updated_ts = $1
WHERE status IN {RUNNING!r} AND {RUNNER_GONE}
"""


class AdminRoomTaskStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def interrupt_own(self, runner: str | None) -> int:
        """At start-up: the tasks a previous run of this process (same
        session name, or a single process) left running are failed."""
        return int(
            (
                await self._pool.execute(
                    f"""UPDATE admin_room_tasks SET status = 'failed', error = $2, updated_ts = $1
                        WHERE status IN {RUNNING!r} AND runner IS NOT DISTINCT FROM $3""",
                    now_ms(),
                    INTERRUPTED,
                    runner,
                )
            ).split()[-1]
        )

    async def create(
        self, task_id: str, kind: str, room_id: str, status: str, runner: str | None
    ) -> bool:
        """Record a new task; False for a delete while another delete of the
        room runs (in any process)."""
        now = now_ms()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_REAP, now, INTERRUPTED)
            try:
                await conn.execute(
                    """INSERT INTO admin_room_tasks
                       (task_id, kind, room_id, status, runner, created_ts, updated_ts)
                       VALUES ($1, $2, $3, $4, $5, $6, $6)""",
                    task_id,
                    kind,
                    room_id,
                    status,
                    runner,
                    now,
                )
            except asyncpg.UniqueViolationError:
                return False
        return True

    async def update(
        self,
        task_id: str,
        status: str,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        await self._pool.execute(
            """UPDATE admin_room_tasks
               SET status = $2, error = COALESCE($3, error),
                   result = COALESCE($4::jsonb, result), updated_ts = $5
               WHERE task_id = $1""",
            task_id,
            status,
            error,
            None if result is None else json.dumps(result),
            now_ms(),
        )

    async def get(self, task_id: str) -> RoomTask | None:
        async with self._pool.acquire() as conn:
            await conn.execute(_REAP, now_ms(), INTERRUPTED)
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM admin_room_tasks WHERE task_id = $1", task_id
            )
        return _task(row) if row else None

    async def of_room(self, room_id: str, kind: str) -> list[RoomTask]:
        """The room's tasks of `kind`, oldest first."""
        async with self._pool.acquire() as conn:
            await conn.execute(_REAP, now_ms(), INTERRUPTED)
            rows = await conn.fetch(
                f"""SELECT {_COLUMNS} FROM admin_room_tasks
                    WHERE room_id = $1 AND kind = $2 ORDER BY created_ts, task_id""",
                room_id,
                kind,
            )
        return [_task(r) for r in rows]
