"""Exports started through the admin API, run as background tasks.

Each job writes to its own directory under the configured export directory
(`export_dir`, in the data directory), named by its id. Its status lives in
PostgreSQL (storage/export_jobs.py), not only in this process: a job cut short
by a stop or a crash is reported as 'interrupted' after the restart, or at
once by any process of a deployment once its process is gone (jobs are not
resumed: starting the export again is cheap and gives a consistent copy).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from homeserver.export.exporter import Exporter, ExportRequest
from homeserver.requester import Requester
from storage.export_jobs import ExportJobStore

logger = logging.getLogger(__name__)

# At most one progress write per job in this many seconds.
_PROGRESS_INTERVAL_S = 0.5
# Exports writing at once in this process; later ones wait their turn (as
# 'running' with no progress yet), so a burst of requests cannot flood the
# database and the disk while the server serves its users.
MAX_CONCURRENT_EXPORTS = 2


class _JobProgress:
    """A job's progress, written to its row now and then while it runs."""

    def __init__(self, store: ExportJobStore, export_id: str) -> None:
        self._store = store
        self._export_id = export_id
        self.done = 0
        self.total: int | None = None
        self._written_at = 0.0
        self._pending: asyncio.Task[None] | None = None

    def set_total(self, total: int) -> None:
        self.total = total
        self._write()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._written_at >= _PROGRESS_INTERVAL_S:
            self._write()

    def _write(self) -> None:
        if self._pending is not None and not self._pending.done():
            return
        self._written_at = time.monotonic()
        self._pending = asyncio.create_task(
            self._store.set_progress(self._export_id, self.done, self.total)
        )

    async def flush(self) -> None:
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)


class ExportJobs:
    def __init__(
        self, store: ExportJobStore, exporter: Exporter, root: Path, *, runner: str | None
    ) -> None:
        """`runner`: this process's database session name in a deployment
        (None alone), recorded with its jobs."""
        self._store = store
        self._runner = runner
        self._exporter = exporter
        self._root = root
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_EXPORTS)

    async def start(self) -> None:
        """Report the jobs a previous run of this process (or a process of the
        deployment that died) left running as interrupted."""
        count = await self._store.interrupt_running(self._runner)
        if count:
            logger.warning("%d export jobs were cut short by the last stop", count)

    async def stop(self) -> None:
        """Cancel running jobs; their rows say interrupted."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def begin(self, admin: Requester, request: ExportRequest) -> str:
        """Check the target (404 if unknown), record the job and start it; its id."""
        await self._exporter.check(request)
        export_id = secrets.token_hex(12)
        out = self._root / export_id
        await self._store.create(
            export_id,
            request.kind,
            request.target,
            request.include_redacted,
            admin.user_id,
            str(out.resolve()),
            self._runner,
        )
        task = asyncio.create_task(self._run(export_id, request, out))
        self._tasks[export_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(export_id, None))
        return export_id

    async def _run(self, export_id: str, request: ExportRequest, out: Path) -> None:
        progress = _JobProgress(self._store, export_id)
        try:
            async with self._slots:
                await self._exporter.export(request, out, progress)
        except asyncio.CancelledError:
            await progress.flush()
            await asyncio.shield(self._store.finish(export_id, "interrupted", progress.done))
            raise
        except Exception as e:
            logger.exception("export %s of %s failed", export_id, request.target)
            await progress.flush()
            await self._store.finish(export_id, "failed", progress.done, str(e))
            return
        await progress.flush()
        await self._store.finish(export_id, "done", progress.done)
        logger.info("export %s of %s written to %s", export_id, request.target, out)

    async def status(self, export_id: str) -> dict[str, Any] | None:
        row = await self._store.get(export_id)
        if row is None:
            return None
        return {
            "export_id": row["export_id"],
            "kind": row["kind"],
            "target": row["target"],
            "include_redacted": row["include_redacted"],
            "requested_by": row["requested_by"],
            "status": row["status"],
            "progress": {"done": row["progress"], "total": row["total"]},
            "output_path": row["output_path"],
            "error": row["error"],
            "started_ts": row["started_ts"],
            "finished_ts": row["finished_ts"],
        }
