"""Rooms in common with another user (MSC2666): the stable and unstable
endpoints, their paging and errors, and matrix-js-sdk's call."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest

from tests.interop.node_script import JS_DIR, run_node_script

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"


async def _room(hs: Any, creator: str, *joiners: str) -> str:
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=creator, json={"preset": "public_chat"}
    )
    assert status == 200
    for token in joiners:
        assert (await hs.request("POST", f"{V3}/join/{body['room_id']}", token=token))[0] == 200
    return body["room_id"]


@pytest.fixture
async def people(hs: Any) -> dict[str, Any]:
    """Alice and Bob share two rooms; Alice has one of her own; Carol shares
    one with Bob only; Dave left the room he shared with Alice."""
    users = {name: await hs.register(name) for name in ("alice", "bob", "carol", "dave")}
    token = {name: body["access_token"] for name, body in users.items()}
    with_dave = await _room(hs, token["bob"], token["alice"], token["dave"])
    shared = sorted([await _room(hs, token["alice"], token["bob"]), with_dave])
    await _room(hs, token["alice"])
    await _room(hs, token["carol"], token["bob"])
    status, _ = await hs.request("POST", f"{V3}/rooms/{with_dave}/leave", token=token["dave"])
    assert status == 200
    return {"users": users, "token": token, "shared": shared}


async def _mutual(hs: Any, token: str, query: str, path: str = f"{V1}/mutual_rooms") -> Any:
    return await hs.request("GET", f"{path}?{query}", token=token)


async def test_mutual_rooms_stable_and_unstable(hs, people):
    alice = people["token"]["alice"]
    for path in (f"{V1}/mutual_rooms", UNSTABLE):
        status, body = await _mutual(hs, alice, "user_id=%40bob%3Alocalhost", path)
        assert (status, body) == (200, {"joined": people["shared"], "count": 2})
    status, body = await _mutual(hs, alice, "user_id=%40carol%3Alocalhost")
    assert (status, body) == (200, {"joined": [], "count": 0})
    # Dave left: only joined rooms count. Unknown and remote users share nothing.
    for other in ("@dave:localhost", "@nobody:localhost", "@bob:elsewhere.example"):
        status, body = await _mutual(hs, alice, f"user_id={quote(other)}")
        assert (status, body) == (200, {"joined": [], "count": 0})


async def test_mutual_rooms_pages_by_100(hs, people):
    alice, bob = people["token"]["alice"], people["token"]["bob"]
    many = [*people["shared"]]
    for _ in range(10):
        many += await asyncio.gather(*(_room(hs, alice, bob) for _ in range(10)))
    many.append(await _room(hs, alice, bob))
    many.sort()
    status, first = await _mutual(hs, alice, "user_id=%40bob%3Alocalhost")
    assert status == 200 and first["count"] == 103 and first["joined"] == many[:100]
    token = first["next_batch"]
    assert 0 < len(token) <= 255 and token.replace("-", "").replace("_", "").isalnum()
    status, second = await _mutual(hs, alice, f"user_id=%40bob%3Alocalhost&from={token}")
    assert (status, second) == (200, {"joined": many[100:], "count": 103})
    # The unstable path also speaks the earlier draft's names that js-sdk sends.
    status, first = await _mutual(hs, alice, "user_id=%40bob%3Alocalhost", UNSTABLE)
    assert first["next_batch_token"] == first["next_batch"] == token
    status, second = await _mutual(
        hs, alice, f"user_id=%40bob%3Alocalhost&batch_token={token}", UNSTABLE
    )
    assert second["joined"] == many[100:]

    # Element's SDK gets them all, following the pages itself.
    me = people["users"]["alice"]
    result = await run_node_script(
        JS_DIR / "mutual_rooms_flow.mjs",
        hs.url,
        me["user_id"],
        me["device_id"],
        me["access_token"],
        "@bob:localhost",
    )
    assert "error" not in result, result
    assert result["versions"]["unstable_features"]["uk.half-shot.msc2666.query_mutual_rooms"]
    assert sorted(result["rooms"]) == many


async def test_mutual_rooms_bad_requests(hs, people):
    alice = people["token"]["alice"]
    cases = [
        ("", 400, "M_MISSING_PARAM"),
        ("user_id=bob", 400, "M_INVALID_PARAM"),
        ("user_id=%40alice%3Alocalhost", 400, "M_INVALID_PARAM"),
        ("user_id=%40bob%3Alocalhost&user_id=%40carol%3Alocalhost", 400, "M_INVALID_PARAM"),
        ("user_id=%40bob%3Alocalhost&from=%21%21%21", 400, "M_INVALID_PARAM"),
        ("user_id=%40bob%3Alocalhost&from=bm90LWEtcm9vbQ", 400, "M_INVALID_PARAM"),
    ]
    for query, want_status, errcode in cases:
        status, body = await _mutual(hs, alice, query)
        assert (status, body["errcode"]) == (want_status, errcode), query
    status, body = await hs.request("GET", f"{V1}/mutual_rooms?user_id=%40bob%3Alocalhost")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
