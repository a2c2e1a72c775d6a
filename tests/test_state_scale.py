"""A room of 2,000 members: one membership change writes a handful of state rows.

State groups are deltas against an ancestor chosen by depth
(storage/state.py): the test checks that chains stay short with no full
snapshot, that storage is linear in the changes, that the groups where
deltas merge hold exactly the right state, and that a compaction (the
backstop for chains past MAX_CHAIN_LENGTH) keeps a group's meaning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from homeserver.accounts.sessions import SessionService
from storage.sessions import SessionStore
from storage.state import MAX_CHAIN_LENGTH, MAX_REBASE, StateStore
from storage.users import UserStore

V3 = "/_matrix/client/v3"
MEMBERS = 2000
CONCURRENCY = 32

logger = logging.getLogger(__name__)


async def _tokens(pool: Any, names: list[str]) -> list[str]:
    """Accounts and access tokens made through storage: no bcrypt, no HTTP."""
    users = UserStore(pool)
    sessions = SessionService(SessionStore(pool), refreshable_lifetime_ms=0)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str) -> str:
        async with limit:
            user_id = f"@{name}:localhost"
            await users.create_user(user_id, None, displayname=name)
            session = await sessions.start_session(user_id, None, None, want_refresh=False, ip=None)
            return session.access_token

    return await asyncio.gather(*(one(n) for n in names))


async def _counts(pool: Any) -> tuple[int, int]:
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM state_groups) AS groups,
                  (SELECT count(*) FROM state_group_entries) AS entries"""
    )
    return row["groups"], row["entries"]


async def _group_of(pool: Any, event_id: str) -> Any:
    return await pool.fetchrow(
        """SELECT g.id, g.prev_group, g.chain_length,
                  (SELECT count(*) FROM state_group_entries WHERE group_id = g.id) AS entries
           FROM events e JOIN state_groups g ON g.id = e.state_group
           WHERE e.event_id = $1""",
        event_id,
    )


async def test_membership_change_in_a_room_of_2000(server_factory, database):
    hs = await server_factory(database={"dsn": database, "min_pool_size": 2, "max_pool_size": 20})
    pool, pipeline = hs.pool, hs.server.pipeline
    owner = (await hs.register("owner"))["access_token"]
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=owner, json={"preset": "public_chat"}
    )
    assert status == 200
    room_id = body["room_id"]

    started = time.perf_counter()
    tokens = await _tokens(pool, [f"user{i}" for i in range(MEMBERS + 200)])
    registered = time.perf_counter()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def join(token: str) -> None:
        async with limit:
            status, body = await hs.request("POST", f"{V3}/rooms/{room_id}/join", token=token)
            assert status == 200, body

    await asyncio.gather(*(join(t) for t in tokens[:MEMBERS]))
    joined = time.perf_counter()
    logger.warning(
        "2,000 accounts in %.1fs, 2,000 joins in %.1fs (%.0f joins/s)",
        registered - started,
        joined - registered,
        MEMBERS / (joined - registered),
    )
    await pipeline.drain()

    # Every chain stayed short while the room grew, with no full snapshot
    # but the room's first group: a group at depth d is stored against the
    # ancestor at d - min(lowbit(d), MAX_REBASE), so its chain has at most
    # log2(MAX_REBASE) + d / MAX_REBASE + 1 groups.
    # Lengths as walked from each snapshot, not as recorded: reads pay these.
    chains = await pool.fetchrow(
        """WITH RECURSIVE walk(id, n) AS (
               SELECT id, 0 FROM state_groups WHERE room_id = $1 AND prev_group IS NULL
               UNION ALL
               SELECT g.id, w.n + 1 FROM state_groups g JOIN walk w ON g.prev_group = w.id
           )
           SELECT max(n) AS longest, count(*) FILTER (WHERE n = 0) AS snapshots,
                  count(*) AS groups
           FROM walk""",
        room_id,
    )
    groups = chains["groups"]
    assert groups >= MEMBERS
    assert chains["snapshots"] == 1
    assert chains["longest"] <= MAX_REBASE.bit_length() + groups // MAX_REBASE + 1
    assert chains["longest"] < MAX_CHAIN_LENGTH

    # Storage linear in the changes: a bounded number of entries per group.
    entries = await pool.fetchval(
        """SELECT count(*) FROM state_group_entries
           WHERE group_id IN (SELECT id FROM state_groups WHERE room_id = $1)""",
        room_id,
    )
    assert entries <= (MAX_REBASE.bit_length() / 2 + 2) * groups

    members = await pool.fetchval(
        """SELECT count(*) FROM current_state
           WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'""",
        room_id,
    )
    assert members == MEMBERS + 1

    # Every sampled group holds exactly the state after its event: that
    # before it (the group of its one prev event) plus the event itself,
    # around the depths where the deltas merge the most.
    store = StateStore(pool)
    sampled = await pool.fetch(
        """SELECT e.event_id, e.type, e.state_key, g.id AS group_id, g.depth,
                  p.state_group AS prev_group_of_prev
           FROM events e JOIN state_groups g ON g.id = e.state_group
           JOIN event_edges x ON x.event_id = e.event_id
           JOIN events p ON p.event_id = x.prev_event_id
           WHERE e.room_id = $1 AND e.state_key IS NOT NULL
             AND g.depth IN (1, 2, 511, 512, 1023, 1024, 1025, 1536, 2000, 2001)""",
        room_id,
    )
    assert len(sampled) >= 8
    for row in sampled:
        after = await store.state_of_group(row["group_id"])
        before = await store.state_of_group(row["prev_group_of_prev"])
        assert after == {**before, (row["type"], row["state_key"]): row["event_id"]}, row["depth"]

    # One join writes one group; over a run of them, a few entries each, and
    # at most one of them (a depth that is a multiple of MAX_REBASE) merges
    # MAX_REBASE of them.
    spare = iter(tokens[MEMBERS:])
    before_counts = await _counts(pool)
    last = ""
    for _ in range(64):
        last = await _join_one(hs, room_id, next(spare))
    after_counts = await _counts(pool)
    assert after_counts[0] - before_counts[0] == 64
    assert after_counts[1] - before_counts[1] <= 64 * (MAX_REBASE.bit_length() / 2 + 2) + MAX_REBASE

    group = await _group_of(pool, last)
    state = await store.state_of_group(group["id"])
    current = await pool.fetch(
        "SELECT type, state_key, event_id FROM current_state WHERE room_id = $1", room_id
    )
    assert state == {(r["type"], r["state_key"]): r["event_id"] for r in current}
    member_keys = {k for k in state if k[0] == "m.room.member"}
    assert len(member_keys) == MEMBERS + 1 + 64
    assert ("m.room.member", "@user0:localhost") in member_keys

    # Compaction (past MAX_CHAIN_LENGTH, a room of very many changes) keeps
    # a group's meaning, and groups built on it afterwards too.
    await store.compact(room_id, group["id"])
    assert await store.state_of_group(group["id"]) == state
    after_compaction = await _join_one(hs, room_id, next(spare))
    rebuilt = await store.state_of_group((await _group_of(pool, after_compaction))["id"])
    assert len([k for k in rebuilt if k[0] == "m.room.member"]) == MEMBERS + 1 + 65


async def _join_one(hs: Any, room_id: str, token: str) -> str:
    status, body = await hs.request("POST", f"{V3}/rooms/{room_id}/join", token=token)
    assert status == 200, body
    status, body = await hs.request("GET", f"{V3}/account/whoami", token=token)
    return await hs.pool.fetchval(
        """SELECT event_id FROM current_state
           WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2""",
        room_id,
        body["user_id"],
    )
