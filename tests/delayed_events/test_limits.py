"""Delayed events' limits and bad input: each refused with the error clients
read, and nothing scheduled or sent."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from homeserver.config import ConfigError, config_from_dict
from tests.conftest import RunningServer, rate_limits_on
from tests.delayed_events.helpers import MSC, V3, User, new_user, wait_for

LIMITS = {"delayed_events": {"max_delay_ms": 10_000, "max_per_user": 2}}


async def _nothing_scheduled(user: User, room: str, count: int = 0) -> None:
    assert len((await user.lookup())["delayed_events"]) == count
    assert await user.bodies(room) == []


async def test_bad_delays_are_refused(server_factory: Any) -> None:
    hs: RunningServer = await server_factory(**LIMITS)
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    for delay in ("-5", "0", "abc", "1.5", "", "99999999999999999999"):
        status, err = await alice.send_later(room, "x", delay)
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM"), delay
    # Longer than allowed: the form Element Call reads to shorten its delay.
    status, err = await alice.send_later(room, "x", 10_001)
    assert status == 400 and err["errcode"] == "M_UNKNOWN"
    assert err["org.matrix.msc4140.errcode"] == "M_MAX_DELAY_EXCEEDED"
    assert err["org.matrix.msc4140.max_delay"] == 10_000
    status, err = await alice.state_later(room, "m.room.topic", "", {"topic": "t"}, 10_001)
    assert err["org.matrix.msc4140.errcode"] == "M_MAX_DELAY_EXCEEDED"
    status, err = await alice.call(
        "PUT",
        f"{V3}/rooms/{quote(room)}/send/m.room.message/p1"
        "?org.matrix.msc4140.delay=100&org.matrix.msc4140.parent_delay_id=x",
        {"body": "x"},
    )
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    await _nothing_scheduled(alice, room)


async def test_bad_bodies_of_the_dedicated_endpoint(server_factory: Any) -> None:
    hs: RunningServer = await server_factory(**LIMITS)
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    path = f"{MSC}/rooms/{quote(room)}/delayed_event/m.room.message/t"
    cases = [
        ({"content": {}}, 400, "M_MISSING_PARAM"),
        ({"delay_ms": 100}, 400, "M_MISSING_PARAM"),
        ({"delay_ms": "100", "content": {}}, 400, "M_BAD_JSON"),
        ({"delay_ms": True, "content": {}}, 400, "M_BAD_JSON"),
        ({"delay_ms": 100, "content": []}, 400, "M_BAD_JSON"),
        ({"delay_ms": 100, "content": {}, "state_key": 5}, 400, "M_BAD_JSON"),
        ({"delay_ms": -1, "content": {}}, 400, "M_INVALID_PARAM"),
        ({"delay_ms": 100, "content": {"body": "x" * 70_000}}, 413, "M_TOO_LARGE"),
    ]
    for body, code, errcode in cases:
        status, err = await alice.call("PUT", path, body)
        assert (status, err["errcode"]) == (code, errcode), body
    status, err = await alice.call(
        "PUT",
        f"{MSC}/rooms/{quote('!nowhere:localhost')}/delayed_event/m.room.message/t",
        {"delay_ms": 100, "content": {}},
    )
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    await _nothing_scheduled(alice, room)


async def test_per_user_cap(server_factory: Any) -> None:
    hs: RunningServer = await server_factory(**LIMITS)
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room = await alice.create_room()
    for body in ("one", "two"):
        status, _ = await alice.send_later(room, body, 8_000)
        assert status == 200
    headers = {"Authorization": f"Bearer {alice.token}"}
    async with hs.http.put(
        f"{hs.url}{V3}/rooms/{quote(room)}/send/m.room.message/three?org.matrix.msc4140.delay=100",
        json={"body": "three"},
        headers=headers,
    ) as resp:
        err = await resp.json()
        assert resp.status == 429 and err["errcode"] == "M_LIMIT_EXCEEDED"
        # Until the first of alice's delayed events goes out (in about 8 s).
        assert 1 <= int(resp.headers["Retry-After"]) <= 8
        assert 0 < err["retry_after_ms"] <= 8_000
    await _nothing_scheduled(alice, room, count=2)
    # The cap is per user.
    status, _ = await bob.send_later(room, "bob's", 8_000)
    assert status == 200
    # A cancelled one frees its place.
    first = (await alice.lookup())["delayed_events"][0]["delay_id"]
    assert await alice.act(first, "cancel") == (200, {})
    status, _ = await alice.send_later(room, "three", 8_000)
    assert status == 200


async def test_switched_off(server_factory: Any) -> None:
    hs: RunningServer = await server_factory(delayed_events={"max_per_user": 0})
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    status, err = await alice.send_later(room, "x", 100)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    await _nothing_scheduled(alice, room)


async def test_management_is_rate_limited(server_factory: Any) -> None:
    hs: RunningServer = await server_factory(
        **rate_limits_on(delayed_event_mgmt={"per_second": 0.01, "burst_count": 2})
    )
    alice = await new_user(hs, "alice")
    room = await alice.create_room()
    _, body = await alice.send_later(room, "x", 60_000)
    assert (await alice.act(body["delay_id"], "restart"))[0] == 200
    assert (await alice.act(body["delay_id"], "restart"))[0] == 200
    status, err = await alice.act(body["delay_id"], "restart")
    assert (status, err["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    status, err = await alice.call("GET", f"{MSC}/delayed_events")
    assert status == 429
    # Without a token the limit is the IP address's own (here: fresh).
    status, _ = await hs.request("POST", f"{MSC}/delayed_events/{body['delay_id']}/restart")
    assert status == 200


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"max_delay_ms": 0}, "delayed_events.max_delay_ms"),
        ({"max_per_user": -1}, "delayed_events.max_per_user"),
        ({"max_per_user": "many"}, "delayed_events.max_per_user"),
        ({"max_scheduled": 5}, "max_scheduled"),
    ],
)
def test_bad_config_names_the_key(section: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"server_name": "x", "delayed_events": section})
    assert named in str(err.value)


async def test_sending_on_time_counts_against_the_write_limit(server_factory: Any) -> None:
    """Events scheduled for one moment cannot get past the per-user write
    limit: one refused by it is finalised with that error, not sent."""
    hs: RunningServer = await server_factory(
        **rate_limits_on(client_writes={"per_second": 0.001, "burst_count": 4})
    )
    alice = await new_user(hs, "alice")
    room = await alice.create_room()  # 1 write
    await alice.send_later(room, "first", 200)  # 2
    await alice.send_later(room, "second", 200)  # 3
    # Sending "first" takes the last write; "second" is refused.

    async def finalised() -> list:
        found = (await alice.lookup("?status=finalised"))["finalised"]
        return found if len(found) == 2 else []

    outcomes = {
        f["delayed_event"]["content"]["body"]: (f["outcome"], f.get("error", {}).get("errcode"))
        for f in await wait_for(finalised)
    }
    assert outcomes == {"first": ("send", None), "second": ("cancel", "M_LIMIT_EXCEEDED")}
    assert await alice.bodies(room) == ["first"]
