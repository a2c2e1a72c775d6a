"""The admin API's export jobs (schema/0400_export_jobs.sql): their status,
kept so that a restart reports the jobs it cut short instead of forgetting them.
Each names the process running it (schema/0592, storage/job_runners.py): in a
deployment, only its own restart or its death interrupts a job."""

from __future__ import annotations

from typing import Any

import asyncpg

from storage.database import now_ms
from storage.job_runners import RUNNER_GONE, left_over


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
        runner: str | None,
    ) -> None:
        await self._pool.execute(
            """INSERT INTO export_jobs (export_id, kind, target, include_redacted,
                   requested_by, status, output_path, started_ts, runner)
               VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8)""",
            export_id,
            kind,
            target,
            include_redacted,
            requested_by,
            output_path,
            now_ms(),
            runner,
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

    async def interrupt_running(self, runner: str | None) -> int:
        """Mark as interrupted the jobs still 'running' that no live process
        runs (called at start-up: no job survives its process): this
        process's from an earlier run, and those of processes that are gone.
        Returns how many there were."""
        result = await self._pool.execute(
            f"""UPDATE export_jobs SET status = 'interrupted', finished_ts = $1
                WHERE status = 'running' AND {left_over("$2")}""",
            now_ms(),
            runner,
        )
        return int(result.split()[-1])

    async def get(self, export_id: str) -> dict[str, Any] | None:
        """The job's row; one whose process died is reported interrupted."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                f"""UPDATE export_jobs SET status = 'interrupted', finished_ts = $2
                    WHERE export_id = $1 AND status = 'running' AND {RUNNER_GONE}""",
                export_id,
                now_ms(),
            )
            row = await conn.fetchrow("SELECT * FROM export_jobs WHERE export_id = $1", export_id)
        if row is None:
            return None
        job = dict(row)
        del job["runner"]
        return job
