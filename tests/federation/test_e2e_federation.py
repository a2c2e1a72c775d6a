"""End-to-end encryption over federation, seen from a scripted remote server:
it queries our users' keys and claims their one-time keys; our users' queries
of its users go to it once and are then answered from the cache, which its
m.device_list_update EDUs keep fresh (a gap in their stream_ids makes us fetch
the whole list again); its users' changes reach our users' /sync; its
to-device messages are delivered once; our device changes reach it."""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any

import attrs
import pytest
from aiohttp import web
from signedjson.key import generate_signing_key
from signedjson.sign import sign_json, verify_signed_json
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.test_sender import (
    SENDER_CONFIG,
    Inbox,
    Local,
    create_room,
    join_remote_user,
    register,
    wait_until,
)
from tests.test_e2e_keys import MEGOLM, OLM, Device, cross_signing_keys, public

V1 = "/_matrix/federation/v1"
_txn_ids = itertools.count()


def signed_device_keys(user_id: str, device_id: str, key: SigningKey) -> dict[str, Any]:
    """A remote device's keys, signed by the device as its client would."""
    return sign_json(
        {
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": [OLM, MEGOLM],
            "keys": {
                f"curve25519:{device_id}": encode_base64(device_id.encode().ljust(32, b"c")),
                f"ed25519:{device_id}": public(key),
            },
        },
        user_id,
        key,
    )


@attrs.define
class RemoteUser:
    """A user of the scripted remote, whose device list it serves."""

    user_id: str
    devices: dict[str, dict[str, Any]] = attrs.Factory(dict)
    stream_id: int = 0
    master_key: dict[str, Any] | None = None

    def add_device(self, device_id: str) -> dict[str, Any]:
        keys = signed_device_keys(self.user_id, device_id, generate_signing_key(device_id))
        self.devices[device_id] = keys
        return keys


@attrs.define
class KeysRemote:
    """The scripted remote's key endpoints and what they were asked."""

    remote: ScriptedRemote
    inbox: Inbox
    users: dict[str, RemoteUser] = attrs.Factory(dict)
    queries: list[dict[str, Any]] = attrs.Factory(list)
    resyncs: list[str] = attrs.Factory(list)
    claims: list[dict[str, Any]] = attrs.Factory(list)
    # /user/devices answers 404 (a resync fails).
    devices_broken: bool = False

    def user(self, localpart: str) -> RemoteUser:
        user_id = f"@{localpart}:{self.remote.server_name}"
        return self.users.setdefault(user_id, RemoteUser(user_id))

    async def send_edus(self, hs: RunningServer, *edus: dict[str, Any]) -> None:
        """One /send transaction to our server holding these EDUs."""
        body = {
            "origin": self.remote.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [],
            "edus": list(edus),
        }
        status, answer = await self.remote.request(
            hs, "PUT", f"{V1}/send/t{next(_txn_ids)}-{time.monotonic_ns()}", json_body=body
        )
        assert status == 200, answer


async def start_keys_remote(remote_factory: Any) -> KeysRemote:
    remote: ScriptedRemote = await remote_factory(start=False)
    keys = KeysRemote(remote, Inbox())

    async def query(_: web.Request, origin: str, body: Any) -> Any:
        keys.queries.append(body["device_keys"])
        answer: dict[str, Any] = {"device_keys": {}, "master_keys": {}}
        for user_id, wanted in body["device_keys"].items():
            user = keys.users.get(user_id)
            if user is None:
                continue
            answer["device_keys"][user_id] = {
                d: {**k, "unsigned": {"device_display_name": f"{d} name"}}
                for d, k in user.devices.items()
                if not wanted or d in wanted
            }
            if user.master_key is not None:
                answer["master_keys"][user_id] = user.master_key
        return answer

    async def user_devices(request: web.Request, origin: str, body: Any) -> Any:
        user = keys.users[request.match_info["userId"]]
        keys.resyncs.append(user.user_id)
        if keys.devices_broken:
            raise web.HTTPNotFound(text='{"errcode": "M_NOT_FOUND"}')
        answer = {
            "user_id": user.user_id,
            "stream_id": user.stream_id,
            "devices": [{"device_id": d, "keys": k} for d, k in user.devices.items()],
        }
        if user.master_key is not None:
            answer["master_key"] = user.master_key
        return answer

    async def send(request: web.Request, origin: str, body: Any) -> Any:
        keys.inbox.transactions.append(body)
        return {"pdus": {}}

    async def claim(_: web.Request, origin: str, body: Any) -> Any:
        keys.claims.append(body["one_time_keys"])
        return {
            "one_time_keys": {
                user_id: {d: {f"{a}:AAAA": {"key": "k"}} for d, a in devices.items()}
                for user_id, devices in body["one_time_keys"].items()
            }
        }

    remote.app.router.add_post(f"{V1}/user/keys/query", remote.handler(query))
    remote.app.router.add_post(f"{V1}/user/keys/claim", remote.handler(claim))
    remote.app.router.add_get(f"{V1}/user/devices/{{userId}}", remote.handler(user_devices))
    remote.app.router.add_put(f"{V1}/send/{{txn_id}}", remote.handler(send))
    await remote.start()
    return keys


async def setup(
    server_factory: Any, remote_factory: Any
) -> tuple[RunningServer, KeysRemote, Device, str]:
    """Our server, alice with uploaded keys, and the remote's bob in her room."""
    hs = await server_factory(**SENDER_CONFIG)
    remote = await start_keys_remote(remote_factory)
    await remote.remote.expect_keys_of(hs)
    local: Local = await register(hs, "alice")
    alice = Device(
        hs, local.user_id, local.device_id, local.token, generate_signing_key(local.device_id)
    )
    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    room_id = await create_room(hs, Local(alice.user_id, alice.token, alice.device_id))
    bob = remote.user("bob")
    bob.add_device("BOBPHONE")
    await join_remote_user(hs, remote.remote, room_id, bob.user_id)
    return hs, remote, alice, room_id


def device_list_update(
    user: RemoteUser, device_id: str, prev_ids: list[int], *, deleted: bool = False
) -> dict[str, Any]:
    """The remote's m.device_list_update for a change it made to its user's list."""
    user.stream_id += 1
    content: dict[str, Any] = {
        "user_id": user.user_id,
        "device_id": device_id,
        "stream_id": user.stream_id,
        "prev_id": prev_ids,
        "deleted": deleted,
    }
    if deleted:
        user.devices.pop(device_id, None)
    else:
        content["keys"] = user.add_device(device_id)
    return {"edu_type": "m.device_list_update", "content": content}


async def query_devices(alice: Device, user_id: str) -> dict[str, Any]:
    answer = await alice.ok("POST", "/keys/query", {"device_keys": {user_id: []}})
    assert answer["failures"] == {}, answer
    return answer["device_keys"].get(user_id, {})


async def test_a_remote_queries_our_users_keys_and_claims_each_one_time_key_once(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, _ = await setup(server_factory, remote_factory)
    uploaded = alice.device_keys()
    await alice.ok(
        "POST",
        "/keys/upload",
        {
            "one_time_keys": alice.one_time_keys("otk", 2),
            "fallback_keys": {
                "signed_curve25519:fb": alice.one_time_key("fallback", fallback=True)
            },
        },
    )
    secrets, cross_signing = cross_signing_keys(alice.user_id)
    await alice.ok("POST", "/keys/device_signing/upload", cross_signing)
    fed = remote.remote

    status, answer = await fed.request(
        hs,
        "POST",
        f"{V1}/user/keys/query",
        json_body={"device_keys": {alice.user_id: [], "@carol:elsewhere.example": []}},
    )
    assert status == 200, answer
    device = answer["device_keys"][alice.user_id][alice.device_id]
    assert {k: v for k, v in device.items() if k != "unsigned"} == uploaded
    verify_signed_json(device, alice.user_id, alice.key.verify_key)
    assert answer["master_keys"] == {alice.user_id: cross_signing["master_key"]}
    assert answer["self_signing_keys"] == {alice.user_id: cross_signing["self_signing_key"]}
    # The user-signing key is private to its owner; other servers' users are not ours.
    assert "user_signing_keys" not in answer
    assert list(answer["device_keys"]) == [alice.user_id]

    status, devices = await fed.request(hs, "GET", f"{V1}/user/devices/{path_quote(alice.user_id)}")
    assert status == 200, devices
    assert devices["user_id"] == alice.user_id
    assert type(devices["stream_id"]) is int
    assert devices["devices"] == [{"device_id": alice.device_id, "keys": uploaded}]
    assert devices["master_key"] == cross_signing["master_key"]
    assert devices["self_signing_key"] == cross_signing["self_signing_key"]
    assert "user_signing_key" not in devices

    claimed = []
    for _ in range(3):
        status, answer = await fed.request(
            hs,
            "POST",
            f"{V1}/user/keys/claim",
            json_body={"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}},
        )
        assert status == 200, answer
        (key_id,) = answer["one_time_keys"][alice.user_id][alice.device_id]
        key = answer["one_time_keys"][alice.user_id][alice.device_id][key_id]
        verify_signed_json(key, alice.user_id, alice.key.verify_key)
        claimed.append(key_id)
    # Each one-time key once, then the fallback key.
    assert sorted(claimed[:2]) == ["signed_curve25519:otk0", "signed_curve25519:otk1"]
    assert claimed[2] == "signed_curve25519:fb"
    counts = (await alice.sync())["device_one_time_keys_count"]
    assert counts["signed_curve25519"] == 0

    # Only our own users, and only for an authenticated server.
    status, answer = await fed.request(
        hs, "GET", f"{V1}/user/devices/{path_quote('@carol:elsewhere.example')}"
    )
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")
    status, answer = await fed.request(
        hs,
        "POST",
        f"{V1}/user/keys/query",
        json_body={"device_keys": {alice.user_id: []}},
        authorization=None,
    )
    assert status == 401, answer
    status, answer = await fed.request(
        hs, "POST", f"{V1}/user/keys/claim", json_body={"one_time_keys": []}
    )
    assert (status, answer["errcode"]) == (400, "M_BAD_JSON")


async def test_a_remote_users_keys_are_fetched_once_then_kept_fresh_by_its_updates(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, _ = await setup(server_factory, remote_factory)
    bob = remote.user("bob")
    secrets, cross_signing = cross_signing_keys(bob.user_id)
    bob.master_key = cross_signing["master_key"]

    first = await alice.ok("POST", "/keys/query", {"device_keys": {bob.user_id: ["BOBPHONE"]}})
    assert first["failures"] == {}
    assert first["device_keys"][bob.user_id] == {
        "BOBPHONE": {
            **bob.devices["BOBPHONE"],
            "unsigned": {"device_display_name": "BOBPHONE name"},
        }
    }
    assert first["master_keys"] == {bob.user_id: bob.master_key}
    # The whole list was asked for, to be cached.
    assert remote.queries == [{bob.user_id: []}]
    again = await alice.ok("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
    assert again["device_keys"] == first["device_keys"]
    assert again["master_keys"] == first["master_keys"]
    assert len(remote.queries) == 1

    # A user sharing no room with ours is asked for every time.
    carol = remote.user("carol")
    carol.add_device("CAROLPC")
    for _ in range(2):
        assert list(await query_devices(alice, carol.user_id)) == ["CAROLPC"]
    assert remote.queries[1:] == [{carol.user_id: []}, {carol.user_id: []}]

    # The first update of a list fetched without a stream_id resyncs it.
    await remote.send_edus(hs, device_list_update(bob, "BOBLAPTOP", [4]))
    assert remote.resyncs == [bob.user_id]
    assert sorted(await query_devices(alice, bob.user_id)) == ["BOBLAPTOP", "BOBPHONE"]
    # Updates that follow the list are applied as they come: no request.
    await remote.send_edus(hs, device_list_update(bob, "BOBPHONE", [bob.stream_id], deleted=True))
    laptop_again = device_list_update(bob, "BOBLAPTOP", [bob.stream_id])
    await remote.send_edus(hs, laptop_again)
    got = await query_devices(alice, bob.user_id)
    assert list(got) == ["BOBLAPTOP"]
    assert {k: v for k, v in got["BOBLAPTOP"].items() if k != "unsigned"} == bob.devices[
        "BOBLAPTOP"
    ]
    # A repeated update changes nothing.
    await remote.send_edus(hs, laptop_again)
    assert remote.resyncs == [bob.user_id]
    assert len(remote.queries) == 3

    # An update that follows one we never saw: the whole list again.
    missed = device_list_update(bob, "BOBTABLET", [bob.stream_id])
    await remote.send_edus(hs, device_list_update(bob, "BOBWATCH", [bob.stream_id]))
    assert remote.resyncs == [bob.user_id, bob.user_id]
    assert sorted(await query_devices(alice, bob.user_id)) == [
        "BOBLAPTOP",
        "BOBTABLET",
        "BOBWATCH",
    ]
    # The missed update, arriving late, is older than the list: ignored.
    await remote.send_edus(hs, missed)
    assert len(remote.resyncs) == 2 and len(remote.queries) == 3

    # A new master key comes with m.signing_key_update.
    _, new_cross_signing = cross_signing_keys(bob.user_id)
    bob.master_key = new_cross_signing["master_key"]
    await remote.send_edus(
        hs,
        {
            "edu_type": "m.signing_key_update",
            "content": {"user_id": bob.user_id, "master_key": bob.master_key},
        },
    )
    answer = await alice.ok("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
    assert answer["master_keys"] == {bob.user_id: bob.master_key}
    assert len(remote.queries) == 3

    # Updates about another server's users are not believed.
    forged = device_list_update(remote.user("bob"), "EVIL", [bob.stream_id])
    forged["content"]["user_id"] = "@bob:elsewhere.example"
    await remote.send_edus(hs, forged)
    assert "EVIL" not in await query_devices(alice, bob.user_id)


async def test_the_cache_is_not_trusted_after_a_failed_resync_or_once_no_room_is_shared(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, room_id = await setup(server_factory, remote_factory)
    bob = remote.user("bob")
    await query_devices(alice, bob.user_id)
    await remote.send_edus(hs, device_list_update(bob, "BOBLAPTOP", []))
    await query_devices(alice, bob.user_id)
    assert len(remote.queries) == 1 and len(remote.resyncs) == 1

    # A gap whose resync fails: the list is stale, the next query asks again.
    remote.devices_broken = True
    device_list_update(bob, "BOBTABLET", [bob.stream_id])
    await remote.send_edus(hs, device_list_update(bob, "BOBWATCH", [bob.stream_id]))
    assert len(remote.resyncs) == 2
    assert sorted(await query_devices(alice, bob.user_id)) == [
        "BOBLAPTOP",
        "BOBPHONE",
        "BOBTABLET",
        "BOBWATCH",
    ]
    assert len(remote.queries) == 2
    await query_devices(alice, bob.user_id)
    assert len(remote.queries) == 2

    # Once bob shares no room with anyone here, nothing tells us of his
    # changes: every query asks his server.
    status, body = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/kick",
        token=alice.token,
        json={"user_id": bob.user_id},
    )
    assert status == 200, body
    for expected in (3, 4):
        await query_devices(alice, bob.user_id)
        assert len(remote.queries) == expected
    # Nor are his updates applied.
    await remote.send_edus(hs, device_list_update(bob, "BOBTV", [bob.stream_id]))
    assert len(remote.resyncs) == 2


async def test_a_remote_users_device_change_reaches_local_syncs(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, _ = await setup(server_factory, remote_factory)
    bob = remote.user("bob")
    await query_devices(alice, bob.user_id)
    since = (await alice.sync())["next_batch"]
    await remote.send_edus(hs, device_list_update(bob, "BOBLAPTOP", []))
    synced = await alice.sync(since)
    assert bob.user_id in synced["device_lists"]["changed"]
    since = synced["next_batch"]
    _, new_cross_signing = cross_signing_keys(bob.user_id)
    await remote.send_edus(
        hs,
        {
            "edu_type": "m.signing_key_update",
            "content": {"user_id": bob.user_id, "master_key": new_cross_signing["master_key"]},
        },
    )
    synced = await alice.sync(since)
    assert synced["device_lists"]["changed"] == [bob.user_id]


async def test_a_remote_to_device_message_is_delivered_once(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, _ = await setup(server_factory, remote_factory)
    bob = remote.user("bob")
    since = (await alice.sync())["next_batch"]
    edu = {
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": bob.user_id,
            "type": "m.room.encrypted",
            "message_id": "m1",
            "messages": {
                alice.user_id: {alice.device_id: {"ciphertext": "for alice's device"}},
                "@carol:elsewhere.example": {"*": {"ciphertext": "not ours"}},
            },
        },
    }
    await remote.send_edus(hs, edu)
    # The same EDU again (a retried transaction): not delivered twice.
    await remote.send_edus(hs, edu)
    everywhere = copy.deepcopy(edu)
    everywhere["content"]["message_id"] = "m2"
    everywhere["content"]["messages"] = {alice.user_id: {"*": {"ciphertext": "every device"}}}
    await remote.send_edus(hs, everywhere)
    # A sender of another server than the origin is not believed.
    forged = copy.deepcopy(everywhere)
    forged["content"].update(sender="@mallory:elsewhere.example", message_id="m3")
    await remote.send_edus(hs, forged)

    synced = await alice.sync(since)
    assert synced["to_device"]["events"] == [
        {
            "sender": bob.user_id,
            "type": "m.room.encrypted",
            "content": {"ciphertext": "for alice's device"},
        },
        {
            "sender": bob.user_id,
            "type": "m.room.encrypted",
            "content": {"ciphertext": "every device"},
        },
    ]
    assert "to_device" not in await alice.sync(synced["next_batch"])


async def test_our_device_changes_reach_the_remote_in_a_prev_id_chain(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, _ = await setup(server_factory, remote_factory)
    inbox = remote.inbox
    await alice.ok("POST", "/keys/upload", {"device_keys": alice.device_keys(algorithms=[OLM])})
    await wait_until(lambda: bool(inbox.edus("m.device_list_update")))
    status, login = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "secret",
        },
    )
    assert status == 200, login
    await wait_until(lambda: len(inbox.edus("m.device_list_update")) >= 2)
    first, second = inbox.edus("m.device_list_update")
    assert first["keys"] == alice.device_keys(algorithms=[OLM])
    assert second["device_id"] == login["device_id"]
    assert second["prev_id"] == [first["stream_id"]]
    assert second["stream_id"] == first["stream_id"] + 1

    # A resync from the remote is at the last update's stream_id.
    status, devices = await remote.remote.request(
        hs, "GET", f"{V1}/user/devices/{path_quote(alice.user_id)}"
    )
    assert status == 200, devices
    assert devices["stream_id"] == second["stream_id"]
    assert sorted(d["device_id"] for d in devices["devices"]) == sorted(
        [alice.device_id, login["device_id"]]
    )

    # A new name is an update too.
    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/devices/{login['device_id']}",
        token=login["access_token"],
        json={"display_name": "alice's phone"},
    )
    assert status == 200
    await wait_until(lambda: len(inbox.edus("m.device_list_update")) >= 3)
    assert inbox.edus("m.device_list_update")[2] == {
        "user_id": alice.user_id,
        "device_id": login["device_id"],
        "device_display_name": "alice's phone",
        "stream_id": second["stream_id"] + 1,
        "prev_id": [second["stream_id"]],
        "deleted": False,
    }

    status, _ = await hs.request(
        "POST", "/_matrix/client/v3/logout", token=login["access_token"], json={}
    )
    assert status == 200
    await wait_until(lambda: len(inbox.edus("m.device_list_update")) >= 4)
    assert inbox.edus("m.device_list_update")[3] == {
        "user_id": alice.user_id,
        "device_id": login["device_id"],
        "stream_id": second["stream_id"] + 2,
        "prev_id": [second["stream_id"] + 1],
        "deleted": True,
    }


async def test_our_user_claims_a_remote_users_key_through_its_server(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, alice, _ = await setup(server_factory, remote_factory)
    bob = remote.user("bob")
    wanted = {bob.user_id: {"BOBPHONE": "signed_curve25519"}}
    claimed = await alice.ok("POST", "/keys/claim", {"one_time_keys": wanted, "timeout": 5000})
    assert claimed == {
        "one_time_keys": {bob.user_id: {"BOBPHONE": {"signed_curve25519:AAAA": {"key": "k"}}}},
        "failures": {},
    }
    assert remote.claims == [wanted]


@pytest.mark.parametrize("answer", ["down", "garbage"])
async def test_a_remote_that_cannot_answer_is_a_failure_and_nothing_is_cached(
    server_factory: Any, remote_factory: Any, answer: str
) -> None:
    hs = await server_factory(**SENDER_CONFIG)
    remote: ScriptedRemote = await remote_factory(start=False)

    async def respond(_: web.Request, origin: str, body: Any) -> Any:
        if answer == "down":
            raise web.HTTPInternalServerError(text='{"errcode": "M_UNKNOWN"}')
        return ["not", "an", "object"]

    remote.app.router.add_post(f"{V1}/user/keys/query", remote.handler(respond))
    remote.app.router.add_post(f"{V1}/user/keys/claim", remote.handler(respond))
    await remote.start()
    await remote.expect_keys_of(hs)
    local = await register(hs, "alice")
    alice = Device(
        hs, local.user_id, local.device_id, local.token, generate_signing_key(local.device_id)
    )
    dave = f"@dave:{remote.server_name}"
    got = await alice.ok("POST", "/keys/query", {"device_keys": {dave: []}})
    assert list(got["failures"]) == [remote.server_name]
    assert got["device_keys"] == {}
    claimed = await alice.ok(
        "POST", "/keys/claim", {"one_time_keys": {dave: {"D": "signed_curve25519"}}}
    )
    assert claimed["one_time_keys"] == {} and list(claimed["failures"]) == [remote.server_name]
    assert await hs.pool.fetchval("SELECT count(*) FROM e2e_remote_users") == 0
