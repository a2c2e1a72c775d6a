"""Each shard of the federation sender keeps its own read position; a shard
new to the database starts where the least advanced sender stopped, so a
change of the number of shards never skips an event."""

from __future__ import annotations

from storage.database import create_pool
from storage.federation_sender import FederationSenderStore


async def test_shards_keep_their_own_positions(database: str):
    pool = await create_pool(database, min_size=1, max_size=2)
    try:
        alone = FederationSenderStore(pool)
        assert await alone.start_position(40) == 40
        await alone.record_batch([], 50)
        first = FederationSenderStore(pool, shard="0-of-2")
        second = FederationSenderStore(pool, shard="1-of-2")
        # Both start where the one sender stopped, not at the current position.
        assert await first.start_position(90) == 50
        assert await second.start_position(90) == 50
        await first.record_batch([("remote.example.org", "!r:example.org", 70)], 70)
        await second.record_batch([], 60)
        assert await first.start_position(90) == 70
        assert await second.start_position(90) == 60
        assert await alone.start_position(90) == 50
        # Three shards now: each starts from the least advanced sender (the
        # one process, at 50).
        third = FederationSenderStore(pool, shard="2-of-3")
        assert await third.start_position(90) == 50
    finally:
        await pool.close()
