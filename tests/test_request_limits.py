"""What one request may ask for: over a ceiling it is refused whole, with
400 M_INVALID_PARAM and a message naming the limit, and nothing is done."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.config import ConfigError, config_from_dict

V3 = "/_matrix/client/v3"

SMALL_LIMITS = {
    "request_limits": {
        "max_invites_per_create_room": 3,
        "max_initial_state_per_create_room": 2,
        "max_users_per_key_query": 3,
        "max_devices_per_key_claim": 3,
        "max_messages_per_to_device": 3,
        "max_via_servers": 2,
    }
}


async def count_rooms(hs: Any) -> int:
    return await hs.pool.fetchval("SELECT count(*) FROM rooms")


def assert_refused(status: int, body: Any, what: str) -> None:
    assert status == 400, body
    assert body["errcode"] == "M_INVALID_PARAM"
    assert what in body["error"] and "at most" in body["error"]


async def test_create_room_with_too_many_invites_is_refused_and_creates_nothing(hs):
    token = (await hs.register("alice"))["access_token"]
    invites = [f"@user{i}:remote{i % 7}.example" for i in range(101)]
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"invite": invites}
    )
    assert_refused(status, body, "invites")
    assert "101" in body["error"] and "100" in body["error"]
    assert await count_rooms(hs) == 0
    assert await hs.pool.fetchval("SELECT count(*) FROM events") == 0


async def test_the_limit_counts_distinct_invites_and_3pid_invites_together(server_factory):
    hs = await server_factory(**SMALL_LIMITS)
    token = (await hs.register("alice"))["access_token"]
    await hs.register("bob")
    # A repeated user id is one invite.
    status, body = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=token,
        json={"invite": ["@bob:localhost"] * 5 + ["@carol:localhost", "@dan:localhost"]},
    )
    assert status == 200, body
    threepid = {
        "id_server": "id.example",
        "id_access_token": "t",
        "medium": "email",
        "address": "x@example.org",
    }
    status, body = await hs.request(
        "POST",
        f"{V3}/createRoom",
        token=token,
        json={"invite": ["@bob:localhost", "@carol:localhost"], "invite_3pid": [threepid] * 2},
    )
    assert_refused(status, body, "invites")
    assert await count_rooms(hs) == 1


async def test_create_room_with_too_much_initial_state_is_refused(server_factory):
    hs = await server_factory(**SMALL_LIMITS)
    token = (await hs.register("alice"))["access_token"]
    state = [{"type": "org.example.s", "state_key": str(i), "content": {}} for i in range(3)]
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"initial_state": state}
    )
    assert_refused(status, body, "initial_state")
    assert await count_rooms(hs) == 0
    status, body = await hs.request(
        "POST", f"{V3}/createRoom", token=token, json={"initial_state": state[:2]}
    )
    assert status == 200, body


async def test_key_query_and_claim_over_the_limit_are_refused(server_factory):
    hs = await server_factory(**SMALL_LIMITS)
    token = (await hs.register("alice"))["access_token"]
    users = {f"@u{i}:localhost": [] for i in range(4)}
    status, body = await hs.request(
        "POST", f"{V3}/keys/query", token=token, json={"device_keys": users}
    )
    assert_refused(status, body, "users")
    status, body = await hs.request(
        "POST", f"{V3}/keys/query", token=token, json={"device_keys": dict(list(users.items())[:3])}
    )
    assert status == 200, body
    claim = {"@u0:localhost": {f"D{i}": "signed_curve25519" for i in range(2)}}
    claim["@u1:localhost"] = {"D9": "signed_curve25519", "D8": "signed_curve25519"}
    status, body = await hs.request(
        "POST", f"{V3}/keys/claim", token=token, json={"one_time_keys": claim}
    )
    assert_refused(status, body, "devices")


async def test_to_device_over_the_limit_is_refused_and_stores_nothing(server_factory):
    hs = await server_factory(**SMALL_LIMITS)
    token = (await hs.register("alice"))["access_token"]
    bob_device = (await hs.register("bob"))["device_id"]
    messages = {"@bob:localhost": {bob_device: {}, **{f"D{i}": {"n": i} for i in range(3)}}}
    status, body = await hs.request(
        "PUT", f"{V3}/sendToDevice/m.test/t1", token=token, json={"messages": messages}
    )
    assert_refused(status, body, "to-device messages")
    assert await hs.pool.fetchval("SELECT count(*) FROM to_device_inbox") == 0
    messages = {"@bob:localhost": {bob_device: {}, **{f"D{i}": {"n": i} for i in range(2)}}}
    status, body = await hs.request(
        "PUT", f"{V3}/sendToDevice/m.test/t2", token=token, json={"messages": messages}
    )
    assert status == 200, body
    assert await hs.pool.fetchval("SELECT count(*) FROM to_device_inbox") == 1


async def test_a_join_naming_too_many_via_servers_is_refused(server_factory):
    hs = await server_factory(**SMALL_LIMITS)
    token = (await hs.register("alice"))["access_token"]
    via = "&".join(f"via=s{i}.example" for i in range(3))
    status, body = await hs.request(
        "POST", f"{V3}/join/!room:elsewhere.example?{via}", token=token, json={}
    )
    assert_refused(status, body, "via servers")
    status, body = await hs.request(
        "POST", f"{V3}/knock/!room:elsewhere.example?{via}", token=token, json={}
    )
    assert_refused(status, body, "via servers")


def test_limits_must_be_positive():
    with pytest.raises(ConfigError, match="request_limits.max_invites_per_create_room"):
        config_from_dict(
            {"server_name": "example.org", "request_limits": {"max_invites_per_create_room": 0}}
        )
