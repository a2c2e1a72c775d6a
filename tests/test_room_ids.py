"""Room ids stay unique even when two rooms would have identical create events."""

from __future__ import annotations

import asyncio

V3 = "/_matrix/client/v3"


async def test_concurrent_identical_v12_rooms_get_distinct_ids(hs):
    token = (await hs.register("maker"))["access_token"]
    results = await asyncio.gather(
        *(
            hs.request("POST", f"{V3}/createRoom", token=token, json={"room_version": "12"})
            for _ in range(6)
        )
    )
    assert [status for status, _ in results] == [200] * 6
    room_ids = {body["room_id"] for _, body in results}
    assert len(room_ids) == 6
    status, joined = await hs.request("GET", f"{V3}/joined_rooms", token=token)
    assert room_ids <= set(joined["joined_rooms"])
