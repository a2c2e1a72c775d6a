"""A room of 2,000 members: one membership change writes a handful of state rows.

State snapshots are deltas over a parent group (schema/0002_rooms.sql); a chain
longer than MAX_CHAIN_LENGTH is rewritten as a full snapshot by a background
compaction. The test counts the rows one join writes itself, accounts for the
compactions separately, and checks that the chains stay short.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from homeserver.accounts.sessions import SessionService
from storage.sessions import SessionStore
from storage.state import MAX_CHAIN_LENGTH, StateStore
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

    # Every chain stayed bounded while the room grew: a group is compacted as
    # soon as its chain passes MAX_CHAIN_LENGTH.
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
    assert chains["longest"] <= MAX_CHAIN_LENGTH + 1
    assert chains["groups"] >= MEMBERS

    members = await pool.fetchval(
        """SELECT count(*) FROM current_state
           WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join'""",
        room_id,
    )
    assert members == MEMBERS + 1

    # One ordinary join (its chain stays within the limit, so no compaction
    # follows): exactly one new group holding exactly one entry.
    spare = iter(tokens[MEMBERS:])
    before = await _counts(pool)
    event_id = await _join_one(hs, room_id, next(spare))
    await pipeline.drain()
    group = await _group_of(pool, event_id)
    after = await _counts(pool)
    if group["chain_length"] > MAX_CHAIN_LENGTH or group["prev_group"] is None:
        # That join happened to close a chain; measure the next one instead.
        before = after
        event_id = await _join_one(hs, room_id, next(spare))
        await pipeline.drain()
        group = await _group_of(pool, event_id)
        after = await _counts(pool)
    assert after[0] - before[0] == 1
    assert after[1] - before[1] <= 3
    assert group["entries"] == 1 and group["prev_group"] is not None

    state = await StateStore(pool).state_of_group(group["id"])
    member_keys = {k for k in state if k[0] == "m.room.member"}
    assert len(member_keys) == MEMBERS + 2
    assert ("m.room.member", "@user0:localhost") in member_keys

    # The join that closes a chain: the request still writes one group and
    # one entry, then the background compaction rewrites that group as a full
    # snapshot of the room's state (every key once).
    while True:
        event_id = await _join_one(hs, room_id, next(spare))
        chain_length = (await _group_of(pool, event_id))["chain_length"]
        if chain_length > MAX_CHAIN_LENGTH or chain_length == 0:
            break
    await pipeline.drain()
    group = await _group_of(pool, event_id)
    assert group["prev_group"] is None and group["chain_length"] == 0
    full = await StateStore(pool).state_of_group(group["id"])
    assert group["entries"] == len(full)
    assert len([k for k in full if k[0] == "m.room.member"]) > MEMBERS + 2

    # The design's promise for the room as a whole: about one full snapshot
    # per MAX_CHAIN_LENGTH + 1 state changes.
    assert chains["snapshots"] <= 2 * MEMBERS // (MAX_CHAIN_LENGTH + 1)


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
