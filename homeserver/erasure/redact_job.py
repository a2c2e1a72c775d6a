"""Redacting all of a user's events, as an admin's background job (Synapse's
`POST /_synapse/admin/v1/user/{user_id}/redact` and its `redact_status`).

Each redaction is a real `m.room.redaction` event sent by the requesting
admin through the event pipeline, so it is checked against the room's power
levels and federates like a moderator's: in a room where the admin may not
redact, each redaction fails and is reported in `failed_redactions`, as in
Synapse with `use_admin`. Events under a legal hold are redacted too (a
redaction is visible moderation); redactions here apply when events are read,
so their original content stays stored for the hold.

The job's request and progress are rows in PostgreSQL (schema/0410): the
status outlives a restart, and a job the server stopped in is resumed at the
next start (events redacted meanwhile are not picked again). In a deployment,
a job is resumed by its own process's restart, or by the next process to
start once its process is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from homeserver.errors import MatrixError, not_found
from homeserver.requester import Requester
from homeserver.rooms.service import RoomService
from storage.user_redactions import RedactJob, UserRedactionStore

logger = logging.getLogger(__name__)

# Redactions sent between two progress updates in the database.
BATCH_SIZE = 50
# In a deployment, how often a process looks for jobs whose process is gone.
ORPHAN_CHECK_S = 10.0


class UserRedactions:
    def __init__(
        self, store: UserRedactionStore, rooms: RoomService, *, runner: str | None
    ) -> None:
        """`runner`: this process's database session name in a deployment
        (None alone), recorded with the jobs it runs."""
        self._store = store
        self._runner = runner
        self._rooms = rooms
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._adopter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resume the jobs an earlier run of this process (or a process of the
        deployment that is gone) did not finish; not those another live
        process runs. In a deployment, keep taking up the jobs of processes
        that die while this one lives."""
        for job in await self._store.take_left_over(self._runner):
            self._launch(job)
        if self._runner is not None:
            self._adopter = asyncio.create_task(self._adopt_orphans(self._runner))

    async def stop(self) -> None:
        """Stop between two redactions; unfinished jobs resume at the next start."""
        self._stopping = True
        if self._adopter is not None:
            self._adopter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._adopter
            self._adopter = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _adopt_orphans(self, runner: str) -> None:
        while True:
            await asyncio.sleep(ORPHAN_CHECK_S)
            try:
                for job in await self._store.take_orphaned(runner):
                    logger.info(
                        "resuming redaction job %s of a process that is gone", job.redact_id
                    )
                    self._launch(job)
            except Exception:
                logger.exception("looking for redaction jobs of processes that are gone failed")

    async def request(
        self,
        admin: Requester,
        user_id: str,
        *,
        rooms: Sequence[str],
        reason: str | None,
        limit: int,
        after_ts: int | None,
        before_ts: int | None,
    ) -> str:
        """Schedule the job; its id for the status endpoint."""
        job = RedactJob(
            redact_id=secrets.token_urlsafe(18),
            user_id=user_id,
            admin_id=admin.user_id,
            rooms=tuple(dict.fromkeys(rooms)),
            reason=reason,
            max_per_room=limit,
            after_ts=after_ts,
            before_ts=before_ts,
            status="scheduled",
            total=0,
            redacted=0,
            failed_redactions={},
            error=None,
        )
        await self._store.create(job, self._runner)
        self._launch(job)
        return job.redact_id

    async def status(self, redact_id: str) -> dict[str, Any]:
        """Synapse's `status` and `failed_redactions`, and the progress so far."""
        job = await self._store.get(redact_id)
        if job is None:
            raise not_found("redact id not found")
        body: dict[str, Any] = {
            "status": job.status,
            "failed_redactions": job.failed_redactions,
            "redacted": job.redacted,
            "total": job.total,
        }
        if job.error is not None:
            body["error"] = job.error
        return body

    def _launch(self, job: RedactJob) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, job: RedactJob) -> None:
        try:
            await self._redact_all(job)
        except Exception as e:
            logger.exception("redaction job %s of %s failed", job.redact_id, job.user_id)
            await self._store.finish(job.redact_id, "failed", str(e))

    async def _redact_all(self, job: RedactJob) -> None:
        rooms = list(job.rooms) or await self._store.rooms_of(job.user_id)
        targets = await self._store.redactable(
            job.user_id,
            rooms,
            per_room=job.max_per_room,
            after_ts=job.after_ts,
            before_ts=job.before_ts,
        )
        await self._store.started(job.redact_id, job.redacted + len(targets))
        admin = Requester(job.admin_id, "", 0)
        content = {"reason": job.reason} if job.reason is not None else {}
        for start in range(0, len(targets), BATCH_SIZE):
            redacted, failed = 0, {}
            for room_id, event_id in targets[start : start + BATCH_SIZE]:
                if self._stopping:
                    break
                try:
                    await self._rooms.send_event(
                        admin, room_id, "m.room.redaction", dict(content), redacts=event_id
                    )
                    redacted += 1
                except MatrixError as e:
                    failed[event_id] = e.message
            await self._store.progress(job.redact_id, redacted, failed)
            if self._stopping:
                return
        logger.info(
            "redaction job %s of %s: %d events redacted", job.redact_id, job.user_id, len(targets)
        )
        await self._store.finish(job.redact_id, "completed")
