"""Every in-process cache another process's write can make stale is kept
true across a deployment (homeserver/cluster/invalidation.py): for each, a
change made through process A, then what process B serves, where B had the
old value cached. Two servers in cluster mode on one database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from homeserver.cluster.invalidation import CacheInvalidations
from tests.appservice.conftest import AS_TOKEN, registration, write_registrations
from tests.cluster.shared import bodies, create_room, join, ok, pair, send, sync
from tests.conftest import RunningServer, rate_limits_on
from tests.test_pushers import Gateway, pusher_body, running_gateway

V3 = "/_matrix/client/v3"
# Every shared cache the server registers; a new one gets a test here.
SHARED = {
    "access_tokens",
    "appservice_users",
    "events",
    "ignored_users",
    "invite_permission",
    "key_counts",
    "presence",
    "push_room_facts",
    "push_rules",
    "ratelimit_overrides",
    "retention_policies",
    "shadow_bans",
    "users_without_pushers",
}


async def eventually(check: Any, within_s: float = 5.0) -> None:
    for _ in range(int(within_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within time")


def channel(server: RunningServer) -> CacheInvalidations:
    return server.server.cache_invalidations


@pytest.fixture
async def two(server_factory: Any) -> tuple[RunningServer, RunningServer]:
    a, b = await pair(server_factory)
    for server in (a, b):
        await asyncio.wait_for(channel(server).listening.wait(), 10)
    return a, b


async def test_every_shared_cache_is_registered_and_heard(two):
    """The registry itself: each cache a process registers is forgotten in
    the other when the first names an entry of it."""
    a, b = two
    # Rooms' retention policies are kept only with retention enabled.
    assert set(channel(a)._caches) == SHARED - {"retention_policies"}
    heard: list[tuple[str, str]] = []
    for name, cache in channel(b)._caches.items():
        original = cache.forget

        def spy(key: str, name: str = name, original: Any = original) -> None:
            heard.append((name, key))
            original(key)

        channel(b)._caches[name] = type(cache)(spy, cache.forget_all)
    for name in channel(a)._caches:
        channel(a).tell_others(name, json.dumps(["@nobody:localhost", "NODEVICE"]))

    async def all_heard() -> bool:
        return {n for n, _ in heard} == SHARED - {"retention_policies"}

    await eventually(all_heard)


async def test_push_rules(two):
    a, b = two
    bob = await a.register("bob")
    path = f"{V3}/pushrules/global/override/org.example.mute"
    status, _ = await b.request("GET", path, token=bob["access_token"])
    assert status == 404  # B has Bob's rules cached now, without it
    await ok(a, "PUT", path, bob["access_token"], {"actions": [], "conditions": []})

    async def seen() -> bool:
        status, body = await b.request("GET", path, token=bob["access_token"])
        return status == 200 and body["rule_id"] == "org.example.mute"

    await eventually(seen)


async def test_ignored_users(two):
    a, b = two
    alice, bob, carol = [await a.register(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(a, alice["access_token"], invite=[bob["user_id"], carol["user_id"]])
    await join(a, bob["access_token"], room_id)
    await join(a, carol["access_token"], room_id)
    since = (await sync(b, bob["access_token"]))["next_batch"]  # B reads Bob's (empty) list
    await ok(
        a,
        "PUT",
        f"{V3}/user/{quote(bob['user_id'])}/account_data/m.ignored_user_list",
        bob["access_token"],
        {"ignored_users": {carol["user_id"]: {}}},
    )
    await asyncio.sleep(0.3)  # the invalidation's round trip
    await send(a, carol["access_token"], room_id, "from the ignored")
    await send(a, alice["access_token"], room_id, "from alice")
    response = await sync(b, bob["access_token"], since)
    seen = bodies(response, room_id)
    while "from alice" not in seen:
        response = await sync(b, bob["access_token"], response["next_batch"], timeout_ms=2000)
        seen += bodies(response, room_id)
    assert "from the ignored" not in seen


async def test_key_counts(two):
    a, b = two
    alice, bob = [await a.register(n) for n in ("alice", "bob")]
    keys = {f"curve25519:k{i}": f"key{i}" for i in range(3)}
    await ok(a, "POST", f"{V3}/keys/upload", alice["access_token"], {"one_time_keys": keys})
    first = await sync(b, alice["access_token"])
    assert first["device_one_time_keys_count"]["curve25519"] == 3
    claimed = await ok(
        a,
        "POST",
        f"{V3}/keys/claim",
        bob["access_token"],
        {"one_time_keys": {alice["user_id"]: {alice["device_id"]: "curve25519"}}},
    )
    assert claimed["one_time_keys"][alice["user_id"]]

    async def counted() -> bool:
        response = await sync(b, alice["access_token"], first["next_batch"])
        return response["device_one_time_keys_count"]["curve25519"] == 2

    await eventually(counted)


async def test_invite_permission(two):
    a, b = two
    alice, bob = [await a.register(n) for n in ("alice", "bob")]
    room_id = await create_room(a, alice["access_token"])
    await ok(
        a,
        "PUT",
        f"{V3}/user/{quote(bob['user_id'])}/account_data/m.invite_permission_config",
        bob["access_token"],
        {"default_action": "block"},
    )

    async def refused_by_b() -> bool:
        status, body = await b.request(
            "POST",
            f"{V3}/rooms/{quote(room_id)}/invite",
            token=alice["access_token"],
            json={"user_id": bob["user_id"]},
        )
        assert status in (200, 403), body
        return status == 403 and body["errcode"] == "M_INVITE_BLOCKED"

    await eventually(refused_by_b)


async def _admin(server: RunningServer, name: str) -> dict[str, Any]:
    user = await server.register(name)
    await server.server.pool.execute(
        "UPDATE users SET admin = TRUE WHERE user_id = $1", user["user_id"]
    )
    return user


async def test_access_tokens_and_shadow_bans(two):
    a, b = two
    admin = await _admin(a, "admin")
    bob, carol = [await a.register(n) for n in ("bob", "carol")]
    room_id = await create_room(a, admin["access_token"])
    await ok(
        a,
        "POST",
        f"{V3}/rooms/{quote(room_id)}/invite",
        admin["access_token"],
        {"user_id": carol["user_id"]},
    )
    await join(b, carol["access_token"], room_id)
    # Both tokens cached by B.
    for user in (bob, carol):
        await ok(b, "GET", f"{V3}/account/whoami", user["access_token"])
    await ok(a, "POST", f"{V3}/logout", bob["access_token"], {})
    await ok(
        a,
        "POST",
        f"/_synapse/admin/v1/users/{quote(carol['user_id'])}/shadow_ban",
        admin["access_token"],
        {},
    )

    async def logged_out_in_b() -> bool:
        status, _ = await b.request("GET", f"{V3}/account/whoami", token=bob["access_token"])
        return status == 401

    await eventually(logged_out_in_b)

    async def shadow_banned_in_b() -> bool:
        body = f"unseen {asyncio.get_running_loop().time()}"
        await send(b, carol["access_token"], room_id, body)
        messages = await ok(
            a, "GET", f"{V3}/rooms/{quote(room_id)}/messages?dir=b&limit=5", admin["access_token"]
        )
        return body not in [e["content"].get("body") for e in messages["chunk"]]

    await eventually(shadow_banned_in_b)


async def test_ratelimit_overrides(server_factory: Any):
    limits = rate_limits_on(registration={"per_second": 100, "burst_count": 100})
    a = await server_factory(cluster={"enabled": True, "instance_name": "a"}, **limits)
    b = await server_factory(cluster={"enabled": True, "instance_name": "b"}, **limits)
    await asyncio.wait_for(channel(b).listening.wait(), 10)
    admin = await _admin(a, "admin")
    bob = await a.register("bob")
    room_id = await create_room(a, bob["access_token"])
    await ok(
        a,
        "POST",
        f"/_synapse/admin/v1/users/{quote(bob['user_id'])}/override_ratelimit",
        admin["access_token"],
        {"messages_per_second": 1, "burst_count": 1},
    )

    async def limited_in_b() -> bool:
        statuses = []
        for i in range(2):
            status, _ = await b.request(
                "PUT",
                f"{V3}/rooms/{quote(room_id)}/send/m.room.message/rl{asyncio.get_running_loop().time()}{i}",
                token=bob["access_token"],
                json={"msgtype": "m.text", "body": "x"},
            )
            statuses.append(status)
        return 429 in statuses

    await eventually(limited_in_b)


async def test_event_rewritten_by_another_process(two):
    """A censored event (retention, self-destruct) is read afresh by B."""
    a, b = two
    alice = await a.register("alice")
    room_id = await create_room(a, alice["access_token"])
    event_id = await send(a, alice["access_token"], room_id, "secret")
    before = await b.server.event_store.get_events([event_id])
    assert before[event_id].event.content["body"] == "secret"
    stored = json.loads(
        await a.server.pool.fetchval("SELECT json FROM events WHERE event_id = $1", event_id)
    )
    stored["content"] = {}
    await a.server.pool.execute(
        "UPDATE events SET json = $2 WHERE event_id = $1", event_id, json.dumps(stored)
    )
    a.server.event_store.forget_cached(event_id)

    async def rewritten_in_b() -> bool:
        found = await b.server.event_store.get_events([event_id])
        return found[event_id].event.content == {}

    await eventually(rewritten_in_b)


async def test_retention_policies(server_factory: Any):
    """A room's m.room.retention persisted through A is the policy B's purge
    job applies (B keeps the policies in memory)."""
    retention = {"enabled": True, "purge_interval_ms": 24 * 3600 * 1000}
    a = await server_factory(cluster={"enabled": True, "instance_name": "a"}, retention=retention)
    b = await server_factory(cluster={"enabled": True, "instance_name": "b"}, retention=retention)
    await asyncio.wait_for(channel(b).listening.wait(), 10)
    alice = await a.register("alice")
    room_id = await create_room(a, alice["access_token"])
    policies = b.server.purge_job._policies
    assert policies is not None
    assert policies.policy(room_id).max_lifetime is None
    await ok(
        a,
        "PUT",
        f"{V3}/rooms/{quote(room_id)}/state/m.room.retention/",
        alice["access_token"],
        {"max_lifetime": 3_600_000},
    )

    async def known_to_b() -> bool:
        return policies.policy(room_id).max_lifetime == 3_600_000

    await eventually(known_to_b)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with running_gateway() as recorder:
        yield recorder


async def _set_pusher(server: RunningServer, user: dict[str, Any], key: str, url: str) -> None:
    await ok(server, "POST", f"{V3}/pushers/set", user["access_token"], pusher_body(key, url))


async def _pushed_in_the_end(
    server: RunningServer, gateway: Gateway, sender: dict[str, Any], room_id: str, key: str
) -> None:
    """Messages sent through `server` until one is pushed to `key` (an
    invalidation takes a round trip to arrive); within 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        event_id = await send(server, sender["access_token"], room_id, "are you there?")
        for _ in range(25):
            if any(p.get("event_id") == event_id for p in gateway.pushes(key)):
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"no push to {key} among {len(gateway.received)} pushes")


async def test_users_without_pushers(two, gateway):
    """B learns that Bob has no pusher (and stops looking), then Bob sets
    one through A: the next message sent through B is pushed to him."""
    a, b = two
    alice, bob, carol = [await a.register(n) for n in ("alice", "bob", "carol")]
    room_id = await create_room(a, alice["access_token"], invite=[bob["user_id"], carol["user_id"]])
    await join(a, bob["access_token"], room_id)
    await join(a, carol["access_token"], room_id)
    await _set_pusher(a, carol, "carol-key", gateway.url)
    # Bob and Carol both mentioned: B looks their pushers up together, so
    # once Carol's push arrives B has recorded that Bob has none.
    mention = await ok(
        b,
        "PUT",
        f"{V3}/rooms/{quote(room_id)}/send/m.room.message/mention",
        alice["access_token"],
        {
            "msgtype": "m.text",
            "body": "hello both",
            "m.mentions": {"user_ids": [bob["user_id"], carol["user_id"]]},
        },
    )
    await gateway.wait_for("carol-key", mention["event_id"])
    assert gateway.pushes("bob-key") == []
    await _set_pusher(a, bob, "bob-key", gateway.url)
    await _pushed_in_the_end(b, gateway, alice, room_id, "bob-key")


async def test_push_room_facts(two, gateway):
    """B caches a room's push facts (who has a pusher or rules of their own)
    and then loses its invalidation channel: Bob's pusher set through A
    meanwhile is never heard of, so B must not trust those facts when it
    listens again."""
    a, b = two
    alice, bob = [await a.register(n) for n in ("alice", "bob")]
    room_id = await create_room(a, alice["access_token"], invite=[bob["user_id"]])
    await join(a, bob["access_token"], room_id)
    await send(b, alice["access_token"], room_id, "evaluated by B")
    lost = channel(b).listening_pid
    assert lost is not None
    assert await a.pool.fetchval("SELECT pg_terminate_backend($1)", lost)

    async def gone() -> bool:
        return not await a.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", lost
        )

    await eventually(gone)
    await _set_pusher(a, bob, "bob-key", gateway.url)

    async def listening_again() -> bool:
        pid = channel(b).listening_pid
        return channel(b).listening.is_set() and pid not in (None, lost)

    await eventually(listening_again, within_s=15)
    event_id = await send(b, alice["access_token"], room_id, "after the loss")
    await gateway.wait_for("bob-key", event_id)


async def test_appservice_users(server_factory: Any, tmp_path: Path):
    """B remembers that a bridge's ghost is not suspended; an admin suspends
    it through A: B refuses the bridge's sends as that ghost."""
    paths = write_registrations(tmp_path, registration(None))
    a, b = [
        await server_factory(
            cluster={"enabled": True, "instance_name": name}, app_service_config_files=paths
        )
        for name in ("a", "b")
    ]
    await asyncio.wait_for(channel(b).listening.wait(), 10)
    admin = await _admin(a, "admin")
    await ok(
        a,
        "POST",
        f"{V3}/register",
        AS_TOKEN,
        {"type": "m.login.application_service", "username": "bridge_kim", "inhibit_login": True},
    )
    ghost = quote("@bridge_kim:localhost")
    room_id = (await ok(b, "POST", f"{V3}/createRoom?user_id={ghost}", AS_TOKEN, {}))["room_id"]
    await ok(
        a,
        "PUT",
        f"/_matrix/client/v1/admin/suspend/{ghost}",
        admin["access_token"],
        {"suspended": True},
    )

    async def refused_by_b() -> bool:
        status, body = await b.request(
            "PUT",
            f"{V3}/rooms/{quote(room_id)}/send/m.room.message/s{time.monotonic()}?user_id={ghost}",
            token=AS_TOKEN,
            json={"msgtype": "m.text", "body": "still here"},
        )
        assert status in (200, 403), body
        return status == 403 and body["errcode"] == "M_USER_SUSPENDED"

    await eventually(refused_by_b)


async def test_presence(two):
    """B caches the row of a user it serves a /sync for; a status set
    through A is what B answers next."""
    a, b = two
    alice = await a.register("alice")
    token = alice["access_token"]
    path = f"{V3}/presence/{quote(alice['user_id'])}/status"
    await ok(b, "GET", "/_matrix/client/v3/sync?timeout=0", token)
    assert (await ok(b, "GET", path, token))["presence"] == "online"
    await ok(a, "PUT", path, token, {"presence": "unavailable", "status_msg": "away"})

    async def seen_by_b() -> bool:
        body = await ok(b, "GET", path, token)
        return (body["presence"], body.get("status_msg")) == ("unavailable", "away")

    await eventually(seen_by_b)
