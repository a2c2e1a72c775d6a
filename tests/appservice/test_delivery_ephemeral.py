"""What an appservice with receive_ephemeral (MSC2409) gets besides events:
typing, read receipts and presence in its rooms, to-device messages for its
users (MSC4203); and with MSC3202 device masquerading, device list changes and
one-time key counts of its users."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.appservice.loopback import LoopbackAppService
from tests.appservice.test_delivery import V3, bridged_hs, bridged_room, send


@pytest.fixture
async def bridge() -> Any:
    service = LoopbackAppService("hs_bridge")
    await service.start()
    yield service
    await service.stop()


def of_type(service: LoopbackAppService, edu_type: str) -> list[dict[str, Any]]:
    return [e for e in service.ephemeral() if e["type"] == edu_type]


async def test_typing_receipts_and_presence_of_its_rooms(server_factory, tmp_path, bridge):
    hs = await bridged_hs(server_factory, tmp_path, bridge, receive_ephemeral=True)
    alice, _, room_id = await bridged_room(hs)
    status, _ = await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/typing/@alice:localhost",
        token=alice,
        json={"typing": True, "timeout": 30000},
    )
    assert status == 200
    typing = await bridge.wait_for(lambda: of_type(bridge, "m.typing"))
    assert typing[-1] == {
        "type": "m.typing",
        "room_id": room_id,
        "content": {"user_ids": ["@alice:localhost"]},
    }
    event_id = await send(hs, alice, room_id, "read me")
    status, _ = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/receipt/m.read/{quote(event_id)}", token=alice, json={}
    )
    assert status == 200
    receipts = await bridge.wait_for(lambda: of_type(bridge, "m.receipt"))
    assert receipts[0]["room_id"] == room_id
    assert "@alice:localhost" in receipts[0]["content"][event_id]["m.read"]
    status, _ = await hs.request(
        "PUT",
        f"{V3}/presence/@alice:localhost/status",
        token=alice,
        json={"presence": "online", "status_msg": "bridging"},
    )
    assert status == 200
    presence = await bridge.wait_for(
        lambda: [p for p in of_type(bridge, "m.presence") if p["sender"] == "@alice:localhost"]
    )
    assert presence[-1]["content"]["status_msg"] == "bridging"
    # The unstable MSC2409 name carries the same list.
    last = next(t for t in reversed(bridge.transactions) if "ephemeral" in t.body)
    assert last.body["de.sorunome.msc2409.ephemeral"] == last.body["ephemeral"]


async def test_without_receive_ephemeral_only_events(server_factory, tmp_path, bridge):
    hs = await bridged_hs(server_factory, tmp_path, bridge)
    alice, _, room_id = await bridged_room(hs)
    await hs.request(
        "PUT",
        f"{V3}/rooms/{room_id}/typing/@alice:localhost",
        token=alice,
        json={"typing": True, "timeout": 30000},
    )
    await send(hs, alice, room_id, "after typing")
    await bridge.wait_for(lambda: any(e["type"] == "m.room.message" for e in bridge.events))
    assert all("ephemeral" not in t.body for t in bridge.transactions)


async def test_to_device_messages_for_its_users(server_factory, tmp_path, bridge):
    hs = await bridged_hs(server_factory, tmp_path, bridge, receive_ephemeral=True)
    alice = await hs.register("alice")
    bob = await hs.register("bridge_bob")
    carol = await hs.register("carol")
    status, body = await hs.request(
        "PUT",
        f"{V3}/sendToDevice/m.room_key_request/t1",
        token=alice["access_token"],
        json={
            "messages": {
                "@bridge_bob:localhost": {bob["device_id"]: {"secret": 1}},
                "@carol:localhost": {carol["device_id"]: {"secret": 2}},
            }
        },
    )
    assert status == 200, body
    txn = await bridge.wait_for(
        lambda: next((t for t in bridge.transactions if "to_device" in t.body), None)
    )
    assert txn.body["to_device"] == [
        {
            "type": "m.room_key_request",
            "sender": "@alice:localhost",
            "to_user_id": "@bridge_bob:localhost",
            "to_device_id": bob["device_id"],
            "content": {"secret": 1},
        }
    ]
    assert txn.body["de.sorunome.msc2409.to_device"] == txn.body["to_device"]


async def test_msc3202_device_lists_and_one_time_key_counts(server_factory, tmp_path, bridge):
    hs = await bridged_hs(
        server_factory,
        tmp_path,
        bridge,
        receive_ephemeral=True,
        **{"org.matrix.msc3202": True},
    )
    alice, bob, room_id = await bridged_room(hs)
    status, body = await hs.request(
        "POST",
        f"{V3}/keys/upload",
        token=bob,
        json={
            "one_time_keys": {
                f"signed_curve25519:K{i}": {"key": f"k{i}", "signatures": {}} for i in range(3)
            },
            "fallback_keys": {
                "signed_curve25519:F1": {"key": "f", "fallback": True, "signatures": {}}
            },
        },
    )
    assert status == 200, body
    await send(hs, bob, room_id, "from the ghost")
    txn = await bridge.wait_for(
        lambda: next(
            (
                t
                for t in bridge.transactions
                if "org.matrix.msc3202.device_one_time_keys_count" in t.body
            ),
            None,
        )
    )
    counts = txn.body["org.matrix.msc3202.device_one_time_keys_count"]
    (device_counts,) = counts["@bridge_bob:localhost"].values()
    assert device_counts == {"signed_curve25519": 3}
    assert txn.body["org.matrix.msc3202.device_one_time_key_counts"] == counts
    fallback = txn.body["org.matrix.msc3202.device_unused_fallback_key_types"]
    assert list(fallback["@bridge_bob:localhost"].values()) == [["signed_curve25519"]]
    # Alice, who shares the bridged room, signs in on a new device.
    status, body = await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "secret",
        },
    )
    assert status == 200, body
    await bridge.wait_for(
        lambda: any(
            "@alice:localhost"
            in t.body.get("org.matrix.msc3202.device_lists", {}).get("changed", [])
            for t in bridge.transactions
        )
    )
    # Alice leaves: the bridge stops tracking her devices.
    status, _ = await hs.request("POST", f"{V3}/rooms/{room_id}/leave", token=alice, json={})
    assert status == 200
    await bridge.wait_for(
        lambda: any(
            "@alice:localhost" in t.body.get("org.matrix.msc3202.device_lists", {}).get("left", [])
            for t in bridge.transactions
        )
    )
