"""The admin API's export jobs (schema/0400_export_jobs.sql): their status,
kept so that a restart reports the jobs it cut short instead of forgetting them."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage.database import now_ms


class ExportJobStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        export_id: str,
        kind: str,
        target: str,
        include_redacted: bool,
        requested_by: str,
        output_path: str,
    ) -> None:
        await self._pool.execute(
            """INSERT INTO export_jobs (export_id, kind, target, include_redacted,
                   requested_by, status, output_path, started_ts)
               VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)""",
            export_id,
            kind,
            target,
            include_redacted,
            requested_by,
            output_path,
            now_ms(),
        )

    async def set_progress(self, export_id: str, progress: int, total: int | None) -> None:
        await self._pool.execute(
            """UPDATE export_jobs SET progress = $2, total = $3
               WHERE export_id = $1 AND status = 'running'""",
            export_id,
            progress,
            total,
        )

    async def finish(
        self, export_id: str, status: str, progress: int, error: str | None = None
    ) -> None:
        await self._pool.execute(
            """UPDATE export_jobs SET status = $2, progress = $3, error = $4, finished_ts = $5
               WHERE export_id = $1 AND status = 'running'""",
            export_id,
            status,
            progress,
            error,
            now_ms(),
        )

    async def interrupt_running(self) -> int:
        """Mark every job still 'running' as interrupted (called at start-up: no
        job survives its process). Returns how many there were."""
        result = await self._pool.execute(
            """UPDATE export_jobs SET status = 'interrupted', finished_ts = $1
               WHERE status = 'running'""",
            now_ms(),
        )
        return int(result.split()[-1])

    async def get(self, export_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow("SELECT * FROM export_jobs WHERE export_id = $1", export_id)
        return None if row is None else dict(row)
