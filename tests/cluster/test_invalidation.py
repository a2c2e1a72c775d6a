"""Cache invalidations between processes (homeserver/cluster/invalidation.py):
two pools on one database stand for two processes of a deployment."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.cluster import invalidation
from homeserver.cluster.invalidation import CacheInvalidations
from tests.cluster.test_leases import pools, until

__all__ = ["pools"]


class DictCache:
    def __init__(self, **entries: str) -> None:
        self.entries = dict(entries)
        self.emptied = 0

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def forget_all(self) -> None:
        self.emptied += 1
        self.entries.clear()


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invalidation, "CHECK_S", 0.05)
    monkeypatch.setattr(invalidation, "RETRY_S", 0.05)


@pytest.fixture
async def two(pools: Any) -> Any:
    """Two processes' invalidation channels, each with one cache "c"."""
    made = []
    for _ in range(2):
        channel = CacheInvalidations()
        cache = DictCache()
        channel.register("c", cache.forget, cache.forget_all)
        await channel.start(await pools())
        await until(channel.listening.is_set)
        made.append((channel, cache))
    yield made
    for channel, _ in made:
        await channel.stop()


async def test_a_change_in_one_process_is_forgotten_in_the_other(two):
    (first, first_cache), (second, second_cache) = two
    for cache in (first_cache, second_cache):
        cache.entries.update(alice="old", bob="old")
    first.forget("c", "alice")
    assert "alice" not in first_cache.entries
    await until(lambda: "alice" not in second_cache.entries)
    assert second_cache.entries == {"bob": "old"}
    assert first_cache.entries == {"bob": "old"}


async def test_tell_others_leaves_this_process_alone(two):
    (first, first_cache), (_, second_cache) = two
    first_cache.entries["alice"] = "new"
    second_cache.entries["alice"] = "old"
    first.tell_others("c", "alice")
    await until(lambda: "alice" not in second_cache.entries)
    assert first_cache.entries == {"alice": "new"}


async def test_unknown_cache_is_refused(two):
    (first, _), _ = two
    with pytest.raises(KeyError):
        first.forget("no such cache", "x")
    with pytest.raises(ValueError):
        first.register("c", print, print)


async def test_a_key_too_long_to_send_empties_the_whole_cache(two):
    (first, _), (_, second_cache) = two
    second_cache.entries.update(alice="old", bob="old")
    first.tell_others("c", "x" * 10_000)
    await until(lambda: not second_cache.entries)


async def test_a_lost_channel_forgets_everything_then_listens_again(two):
    """Notifications sent while a process was not listening are lost: when it
    listens again it must not trust anything it cached before."""
    (first, _), (second, second_cache) = two
    pool = second._pool
    assert pool is not None
    emptied = second_cache.emptied
    second_cache.entries["alice"] = "cached before the loss"
    # Every other session on the database ends, the listening ones with them,
    # as when the database restarts or the network drops.
    await pool.execute(
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
    )
    await until(lambda: second_cache.emptied > emptied, within_s=10)
    await until(second.listening.is_set)
    assert second_cache.entries == {}
    # And it hears again.
    second_cache.entries["bob"] = "old"
    first.forget("c", "bob")
    await until(lambda: "bob" not in second_cache.entries)
