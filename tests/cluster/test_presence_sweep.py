"""The presence sweep of a deployment, driven by a clock the test moves:
activity seen by one process and a sync held by another both count when the
sweeper decides idle and offline (tests/cluster/test_shared_presence.py
runs the same across real processes, with real time)."""

from __future__ import annotations

from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.cluster.presence import SharedPresenceService
from homeserver.ephemeral.common import StreamPublisher
from homeserver.ephemeral.presence import PresenceTimers
from homeserver.notifier import Notifier
from storage.presence import PresenceStore
from storage.presence_syncs import PresenceSyncStore
from storage.streams import StreamIds

S = 1000


async def test_activity_and_syncs_of_two_processes_agree(hs, users):
    alice = await users("alice")
    clock = [1_000_000_000]
    timers = PresenceTimers(idle_ms=300 * S, sync_timeout_ms=30 * S, active_ms=60 * S)

    def process(name: str) -> SharedPresenceService:
        return SharedPresenceService(
            PresenceStore(hs.pool),
            StreamPublisher("presence", StreamIds(hs.pool, "presence_stream"), Notifier()),
            PresenceSyncStore(hs.pool),
            CacheInvalidations(),
            instance=name,
            server_name="localhost",
            timers=timers,
            clock=lambda: clock[0],
        )

    async def stored() -> tuple[str, bool]:
        row = (await PresenceStore(hs.pool).get([alice.user_id]))[alice.user_id]
        return row.state, row.currently_active

    a, b = process("a"), process("b")
    taken_at = clock[0]
    async with a.syncing(alice.user_id, "online"):
        assert await stored() == ("online", True)
        # Typing through b, 200 s later: active then, as far as b knows.
        clock[0] += 200 * S
        await b.bump_active(alice.user_id)
        await b.beat()
        # 310 s after her sync began, 110 s after the typing: not idle, no
        # longer currently active. (a reports her sync every few seconds.)
        clock[0] += 110 * S
        await a.beat()
        await b.sweep(taken_at)
        assert await stored() == ("online", False)
        # 310 s after the typing: idle, yet not offline while a holds her sync.
        clock[0] += 200 * S
        await a.beat()
        await b.sweep(taken_at)
        assert await stored() == ("unavailable", False)
        # Activity through b brings her back at once.
        await b.bump_active(alice.user_id)
        assert await stored() == ("online", True)
    await a.beat()
    clock[0] += 29 * S
    await b.sweep(taken_at)
    assert (await stored())[0] == "online"
    clock[0] += 2 * S
    await b.sweep(taken_at)
    assert await stored() == ("offline", False)
