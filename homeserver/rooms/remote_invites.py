"""createRoom's invites of other servers' users, sent after the answer.

Each such invite is a handshake with the invitee's server (it signs the
invite first), so one unreachable server could hold a createRoom for as long
as its connection attempts take, and many invitees for minutes. Instead the
room is made with the local invites, and the remote ones go out here: one
job per server, servers in parallel, a server's invitees one after another.
A server that cannot be reached is tried again later (its other invitees
wait for it); one that refuses an invite refuses that invite only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from homeserver.errors import MatrixError
from homeserver.identifiers import split_user_id

logger = logging.getLogger(__name__)

# Invite one user: (sender, room id, invitee, extra member content).
InviteOne = Callable[[str, str, str, dict[str, Any]], Awaitable[object]]

# Waits before trying an unreachable server again; after the last, its
# remaining invites are given up (and logged).
RETRY_DELAYS_S = (30.0, 300.0, 1800.0)
# How long createRoom waits for its remote invites before it answers
# without them: reachable servers are done by then, unreachable ones do not
# hold the client.
ANSWER_WITHIN_S = 5.0
# A status of ours that means the invitee's server did not answer at all.
UNREACHABLE_STATUSES = frozenset({502, 503, 504})


class RemoteInvites:
    def __init__(
        self, invite_one: InviteOne, retry_delays_s: Sequence[float] = RETRY_DELAYS_S
    ) -> None:
        self._invite_one = invite_one
        self._retry_delays_s = tuple(retry_delays_s)
        self._jobs: set[asyncio.Task[None]] = set()

    def start(
        self, sender: str, room_id: str, invitees: Sequence[str], extra: dict[str, Any]
    ) -> asyncio.Task[None]:
        """Send the invites in the background; the task ends when every
        server has had its invites (or has been given up)."""
        by_server: dict[str, list[str]] = {}
        for invitee in invitees:
            parts = split_user_id(invitee)
            assert parts is not None
            by_server.setdefault(parts[1], []).append(invitee)
        task = asyncio.create_task(
            self._all(sender, room_id, by_server, extra), name=f"remote invites {room_id}"
        )
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
        return task

    async def _all(
        self, sender: str, room_id: str, by_server: dict[str, list[str]], extra: dict[str, Any]
    ) -> None:
        await asyncio.gather(
            *(
                self._server(sender, room_id, server, users, extra)
                for server, users in by_server.items()
            )
        )

    async def _server(
        self, sender: str, room_id: str, server: str, invitees: list[str], extra: dict[str, Any]
    ) -> None:
        pending = list(invitees)
        for delay in (0.0, *self._retry_delays_s):
            if delay:
                await asyncio.sleep(delay)
            while pending:
                try:
                    await self._invite_one(sender, room_id, pending[0], dict(extra))
                except MatrixError as e:
                    if e.status in UNREACHABLE_STATUSES:
                        logger.info("invites to %s in %s wait: %s", server, room_id, e.message)
                        break
                    logger.info("%s refused the invite of %s: %s", server, pending[0], e.message)
                except Exception:
                    logger.exception("inviting %s to %s failed", pending[0], room_id)
                pending.pop(0)
            if not pending:
                return
        logger.warning(
            "gave up inviting %d users of %s to %s: the server cannot be reached",
            len(pending),
            server,
            room_id,
        )

    async def stop(self) -> None:
        """Cancel the invites still waiting (at shutdown)."""
        for task in list(self._jobs):
            task.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
