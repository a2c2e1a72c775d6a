"""The legal hold store every content purge asks: holds on a room or on a
user, placed once, lifted once, and the SQL condition bulk purges use."""

from __future__ import annotations

import asyncpg

from storage.legal_holds import NOT_HELD_SQL, LegalHoldStore


async def test_holds_on_rooms_and_users(database: str) -> None:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    try:
        holds = LegalHoldStore(pool)
        assert not await holds.is_held("!r:hs", "@a:hs")
        assert await holds.place("room", "!r:hs", "case 12", "@admin:hs")
        assert not await holds.place("room", "!r:hs", "again", "@admin:hs")
        assert await holds.place("user", "@b:hs", "", "@admin:hs")
        assert await holds.is_held("!r:hs", "@a:hs")
        assert await holds.is_held("!other:hs", "@b:hs")
        assert not await holds.is_held("!other:hs", "@a:hs")
        assert (await holds.get("room", "!r:hs")).reason == "case 12"
        assert [h.target for h in await holds.all()] == ["!r:hs", "@b:hs"]
        assert await holds.user_held("@b:hs") and not await holds.user_held("@a:hs")

        # The bulk condition agrees, over rows shaped like `events`.
        held = await pool.fetch(
            f"""SELECT e.room_id, e.sender FROM (VALUES
                    ('!r:hs', '@a:hs'), ('!other:hs', '@b:hs'), ('!other:hs', '@a:hs')
                ) AS e (room_id, sender) WHERE {NOT_HELD_SQL}"""
        )
        assert [tuple(r) for r in held] == [("!other:hs", "@a:hs")]

        assert await holds.lift("room", "!r:hs")
        assert not await holds.lift("room", "!r:hs")
        assert not await holds.is_held("!r:hs", "@a:hs")
    finally:
        await pool.close()
