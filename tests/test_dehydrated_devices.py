"""Dehydrated devices (MSC3814) at the protocol level, over real HTTP: the
device and its keys are made and signed here as a client makes them
(signedjson), another user finds the device through /keys/query, claims one
of its one-time keys and sends it to-device messages, and the owner's next
client pages through them with `next_batch`; a new device replaces the old;
bad input is refused, changing nothing."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from signedjson.key import generate_signing_key

from tests.test_e2e_keys import Device

PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
V3 = "/_matrix/client/v3"
_txn = itertools.count()


@pytest.fixture
def device(hs: Any) -> Any:
    """device(name): registers the user and returns their first device."""

    async def make(name: str) -> Device:
        body = await hs.register(name)
        return Device(
            hs,
            body["user_id"],
            body["device_id"],
            body["access_token"],
            generate_signing_key(body["device_id"]),
        )

    return make


def dehydrated_of(owner: Device, device_id: str) -> Device:
    """The dehydrated device's keys, made by the owner's client."""
    return Device(owner.hs, owner.user_id, device_id, owner.token, generate_signing_key(device_id))


def put_body(dehydrated: Device, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": dehydrated.device_id,
        "device_data": {"algorithm": "org.matrix.msc3814.v2", "device_pickle": "encrypted"},
        "initial_device_display_name": "Dehydrated device",
        "device_keys": dehydrated.device_keys(dehydrated=True),
        "one_time_keys": dehydrated.one_time_keys("otk", 2),
        "fallback_keys": {
            "signed_curve25519:fb": dehydrated.one_time_key("fallback", fallback=True)
        },
        **extra,
    }


async def call(owner: Device, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await owner.hs.request(method, PREFIX + path, token=owner.token, json=body)


async def send_to(sender: Device, target: Device, n: int) -> None:
    await sender.ok(
        "PUT",
        f"/sendToDevice/m.room.encrypted/t{next(_txn)}",
        {"messages": {target.user_id: {target.device_id: {"n": n}}}},
    )


async def test_others_encrypt_to_the_dehydrated_device_and_it_reads_them(device: Any) -> None:
    alice = await device("alice")
    bob = await device("bob")
    dehydrated = dehydrated_of(alice, "DEHYDRATED1")
    status, body = await call(alice, "PUT", "", put_body(dehydrated))
    assert (status, body) == (200, {"device_id": "DEHYDRATED1"})
    status, body = await call(alice, "GET", "")
    assert status == 200
    assert body == {
        "device_id": "DEHYDRATED1",
        "device_data": {"algorithm": "org.matrix.msc3814.v2", "device_pickle": "encrypted"},
    }

    # Bob sees the device with its keys, and claims a one-time key of it.
    found = (await bob.query(alice.user_id))["device_keys"][alice.user_id]
    assert found["DEHYDRATED1"]["dehydrated"] is True
    assert found["DEHYDRATED1"]["keys"] == dehydrated.device_keys()["keys"]
    assert found["DEHYDRATED1"]["unsigned"]["device_display_name"] == "Dehydrated device"
    claimed = await bob.claim(dehydrated)
    assert list(claimed)[0].startswith("signed_curve25519:otk")

    # Bob's messages wait for alice's next client, which pages through them.
    for n in range(3):
        await send_to(bob, dehydrated, n)
    status, page = await call(alice, "POST", "/DEHYDRATED1/events?limit=2", {})
    assert status == 200, page
    assert [e["content"]["n"] for e in page["events"]] == [0, 1]
    assert page["events"][0]["sender"] == bob.user_id
    assert page["events"][0]["type"] == "m.room.encrypted"
    status, rest = await call(
        alice, "POST", "/DEHYDRATED1/events", {"next_batch": page["next_batch"]}
    )
    assert [e["content"]["n"] for e in rest["events"]] == [2]
    status, done = await call(
        alice, "POST", "/DEHYDRATED1/events", {"next_batch": rest["next_batch"]}
    )
    assert done["events"] == []
    # The GET form of the current MSC text, with `from`.
    await send_to(bob, dehydrated, 3)
    status, got = await call(alice, "GET", f"/DEHYDRATED1/events?from={done['next_batch']}")
    assert [e["content"]["n"] for e in got["events"]] == [3]
    status, empty = await call(alice, "GET", f"/DEHYDRATED1/events?from={got['next_batch']}")
    assert (status, empty) == (200, {"events": []})


async def test_a_new_dehydrated_device_replaces_the_old(device: Any) -> None:
    alice = await device("alice")
    bob = await device("bob")
    first = dehydrated_of(alice, "FIRST")
    second = dehydrated_of(alice, "SECOND")
    assert (await call(alice, "PUT", "", put_body(first)))[0] == 200
    await send_to(bob, first, 1)
    assert (await call(alice, "PUT", "", put_body(second)))[0] == 200
    devices = (await bob.query(alice.user_id))["device_keys"][alice.user_id]
    assert "SECOND" in devices and "FIRST" not in devices
    # The old one's messages went with it; only the current one may be read.
    status, body = await call(alice, "POST", "/FIRST/events", {})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # The same id again is fine too (its keys are replaced).
    assert (await call(alice, "PUT", "", put_body(second)))[0] == 200

    assert await call(alice, "DELETE", "") == (200, {"device_id": "SECOND"})
    status, body = await call(alice, "GET", "")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await call(alice, "DELETE", "")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    remaining = (await bob.query(alice.user_id))["device_keys"].get(alice.user_id, {})
    assert "SECOND" not in remaining


async def test_bad_input_is_refused_and_changes_nothing(device: Any) -> None:
    alice = await device("alice")
    bob = await device("bob")
    current = dehydrated_of(alice, "CURRENT")
    assert (await call(alice, "PUT", "", put_body(current)))[0] == 200
    other = dehydrated_of(alice, "OTHER")
    no_keys = put_body(other)
    del no_keys["device_keys"]
    wrong_signature = put_body(other)
    wrong_signature["device_keys"] = dehydrated_of(alice, "OTHER").device_keys(dehydrated=True)
    wrong_signature["device_keys"]["keys"]["ed25519:OTHER"] = other.device_keys()["keys"][
        "ed25519:OTHER"
    ]
    wrong_signature["device_keys"]["algorithms"] = ["changed-after-signing"]
    cases = [
        (no_keys, 400, "M_MISSING_PARAM"),
        ({**put_body(other), "device_data": "text"}, 400, "M_BAD_JSON"),
        ({**put_body(other), "device_data": {"no": "algorithm"}}, 400, "M_BAD_JSON"),
        ({**put_body(other), "device_id": 7}, 400, "M_BAD_JSON"),
        ({**put_body(other), "initial_device_display_name": 7}, 400, "M_BAD_JSON"),
        (wrong_signature, 400, "M_INVALID_PARAM"),
        # Keys for another device than the one named.
        ({**put_body(other), "device_id": "THIRD"}, 400, "M_INVALID_PARAM"),
        # An existing (real) device's id.
        (put_body(dehydrated_of(alice, alice.device_id)), 400, "M_INVALID_PARAM"),
    ]
    for body, status, errcode in cases:
        got = await call(alice, "PUT", "", body)
        assert (got[0], got[1]["errcode"]) == (status, errcode), body
    status, body = await alice.hs.request("PUT", PREFIX, json=put_body(other))
    assert status == 401

    # The current device is untouched, and no other was made.
    status, body = await call(alice, "GET", "")
    assert body["device_id"] == "CURRENT"
    devices = (await bob.query(alice.user_id))["device_keys"][alice.user_id]
    assert set(devices) == {"CURRENT"}
    listed = await alice.ok("GET", "/devices")
    assert {d["device_id"] for d in listed["devices"]} == {alice.device_id, "CURRENT"}

    # Another user's or a made-up device's messages, and bad tokens.
    for path, status, errcode in [
        ("/CURRENT/events", 403, "M_FORBIDDEN"),
    ]:
        got = await bob.hs.request("POST", PREFIX + path, token=bob.token, json={})
        assert (got[0], got[1]["errcode"]) == (status, errcode)
    for method, path, body in [
        ("POST", "/CURRENT/events", {"next_batch": "x"}),
        ("POST", "/CURRENT/events", {"next_batch": 5}),
        ("GET", "/CURRENT/events?from=-1", None),
        ("GET", "/CURRENT/events?limit=0", None),
    ]:
        got = await call(alice, method, path, body)
        assert (got[0], got[1]["errcode"]) == (400, "M_INVALID_PARAM"), (path, body)
    assert (await call(alice, "POST", "/NOPE/events", {}))[0] == 403
    assert (await call(alice, "GET", "", None))[1]["device_id"] == "CURRENT"
    versions = await alice.hs.request("GET", "/_matrix/client/versions")
    assert versions[1]["unstable_features"]["org.matrix.msc3814"] is True
