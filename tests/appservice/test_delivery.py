"""Pushes to an appservice (PUT /_matrix/app/v1/transactions/{txnId}) as a
loopback appservice sees them: the events of rooms it is interested in, in
order, with its hs_token, at most 100 a transaction, nothing lost while it is
down or while our server restarts."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.appservice.delivery_setup import Namespace, appservice, start_delivery
from tests.appservice.loopback import LoopbackAppService
from tests.conftest import make_config, start_server

V3 = "/_matrix/client/v3"


@pytest.fixture
async def bridge() -> Any:
    service = LoopbackAppService("hs_bridge")
    await service.start()
    yield service
    await service.stop()


async def create_room(hs: Any, token: str, **body: Any) -> str:
    status, created = await hs.request("POST", f"{V3}/createRoom", token=token, json=body)
    assert status == 200, created
    return created["room_id"]


async def join(hs: Any, token: str, room_id: str) -> None:
    status, body = await hs.request("POST", f"{V3}/join/{room_id}", token=token, json={})
    assert status == 200, body


async def send(hs: Any, token: str, room_id: str, text: str) -> str:
    status, body = await hs.request(
        "POST",
        f"{V3}/rooms/{room_id}/send/m.room.message",
        token=token,
        json={"msgtype": "m.text", "body": text},
    )
    if status == 405:
        status, body = await hs.request(
            "PUT",
            f"{V3}/rooms/{room_id}/send/m.room.message/{text}",
            token=token,
            json={"msgtype": "m.text", "body": text},
        )
    assert status == 200, body
    return body["event_id"]


def bodies(service: LoopbackAppService, room_id: str) -> list[str]:
    return [
        e["content"]["body"]
        for e in service.events
        if e["room_id"] == room_id and e["type"] == "m.room.message"
    ]


async def bridged_room(hs: Any) -> tuple[str, str, str]:
    """Alice's room with the ghost @bridge_bob in it: (alice's token, bob's, room)."""
    alice = await hs.register("alice")
    bob = await hs.register("bridge_bob")
    room_id = await create_room(hs, alice["access_token"], preset="public_chat")
    await join(hs, bob["access_token"], room_id)
    return alice["access_token"], bob["access_token"], room_id


async def test_events_of_interesting_rooms_arrive_in_order_with_the_hs_token(hs, bridge):
    delivery = await start_delivery(hs, appservice("bridge", bridge.url, r"@bridge_.*:localhost"))
    try:
        alice, _, room_id = await bridged_room(hs)
        other_room = await create_room(hs, alice)
        await send(hs, alice, other_room, "not for the bridge")
        sent = [await send(hs, alice, room_id, f"m{i}") for i in range(5)]
        await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == 5)
        ids = [e["event_id"] for e in bridge.events if e["type"] == "m.room.message"]
        assert ids == sent
        # The ghost's join, which made the room interesting, came first.
        joins = [e for e in bridge.events if e["type"] == "m.room.member"]
        assert joins[0]["state_key"] == "@bridge_bob:localhost"
        assert all(e["room_id"] != other_room for e in bridge.events)
        for txn in bridge.transactions:
            assert txn.authorization == "Bearer hs_bridge"
            assert "access_token" not in txn.query
        # Client-format events.
        message = bridge.events[-1]
        assert message["sender"] == "@alice:localhost"
        assert {"event_id", "origin_server_ts", "unsigned", "content"} <= message.keys()
        txn_ids = [int(t.txn_id) for t in bridge.transactions]
        assert txn_ids == sorted(set(txn_ids))
    finally:
        await delivery.stop()


async def test_a_room_named_by_alias_or_id_namespace_is_interesting(hs, bridge):
    alice = (await hs.register("alice"))["access_token"]
    by_alias = await create_room(hs, alice, room_alias_name="irc_chan")
    by_id = await create_room(hs, alice)
    neither = await create_room(hs, alice)
    service = appservice(
        "bridge",
        bridge.url,
        r"@bridge_.*:localhost",
        aliases=(_ns(r"#irc_.*:localhost"),),
        rooms=(_ns(by_id),),
    )
    delivery = await start_delivery(hs, service)
    try:
        for room_id in (neither, by_alias, by_id):
            await send(hs, alice, room_id, "hello")
        await bridge.wait_for(lambda: bodies(bridge, by_alias) and bodies(bridge, by_id))
        assert not bodies(bridge, neither)
    finally:
        await delivery.stop()


async def test_an_alias_published_later_makes_a_room_interesting(hs, bridge):
    alice = (await hs.register("alice"))["access_token"]
    room_id = await create_room(hs, alice)
    service = appservice(
        "bridge", bridge.url, r"@bridge_.*:localhost", aliases=(_ns(r"#irc_.*:localhost"),)
    )
    delivery = await start_delivery(hs, service)
    try:
        await send(hs, alice, room_id, "before")
        status, body = await hs.request(
            "PUT",
            f"{V3}/directory/room/%23irc_late:localhost",
            token=alice,
            json={"room_id": room_id},
        )
        assert status == 200, body
        await send(hs, alice, room_id, "now bridged")
        await bridge.wait_for(lambda: bodies(bridge, room_id) == ["now bridged"])
    finally:
        await delivery.stop()


def _ns(regex: str) -> Namespace:
    return Namespace(re.compile(regex), False)


async def test_at_most_100_events_a_transaction(hs, bridge):
    delivery = await start_delivery(hs, appservice("bridge", bridge.url, r"@bridge_.*:localhost"))
    try:
        alice, _, room_id = await bridged_room(hs)
        await bridge.wait_for(lambda: bridge.events)
        bridge.failing = True
        for i in range(130):
            await send(hs, alice, room_id, f"m{i}")
        bridge.failing = False
        delivery.wake("bridge")
        await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == 130)
        assert bodies(bridge, room_id) == [f"m{i}" for i in range(130)]
        assert max(len(t.body["events"]) for t in bridge.transactions) == 100
    finally:
        await delivery.stop()


async def test_an_appservice_that_was_down_gets_everything_in_order(hs, bridge):
    delivery = await start_delivery(hs, appservice("bridge", bridge.url, r"@bridge_.*:localhost"))
    try:
        alice, bob, room_id = await bridged_room(hs)
        await send(hs, alice, room_id, "before")
        await bridge.wait_for(lambda: bodies(bridge, room_id) == ["before"])
        await bridge.stop()
        for i in range(10):
            await send(hs, alice, room_id, f"while down {i}")
            await send(hs, bob, room_id, f"ghost {i}")
        await bridge.start()
        # The retry after a successful ping.
        delivery.wake("bridge")
        expected = ["before"] + [m for i in range(10) for m in (f"while down {i}", f"ghost {i}")]
        await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == len(expected))
        assert bodies(bridge, room_id) == expected
    finally:
        await delivery.stop()


async def test_nothing_is_lost_across_a_restart_of_our_server(database, tmp_path, bridge):
    config = make_config(database, tmp_path)
    service = appservice("bridge", bridge.url, r"@bridge_.*:localhost")
    hs = await start_server(config)
    try:
        delivery = await start_delivery(hs, service)
        alice, _, room_id = await bridged_room(hs)
        await send(hs, alice, room_id, "first")
        await bridge.wait_for(lambda: bodies(bridge, room_id) == ["first"])
        bridge.failing = True
        for i in range(5):
            await send(hs, alice, room_id, f"missed {i}")
        # A transaction is in flight (stored, refused) when the server stops.
        await bridge.wait_for(lambda: bridge.attempts > len(bridge.transactions))
        await delivery.stop()
    finally:
        await hs.http.close()
        await hs.server.stop()
    hs = await start_server(config)
    try:
        # Sent while the appservice still refuses, then after it recovers.
        await send(hs, alice, room_id, "after restart")
        bridge.failing = False
        delivery = await start_delivery(hs, service)
        expected = ["first", *(f"missed {i}" for i in range(5)), "after restart"]
        await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == len(expected))
        assert bodies(bridge, room_id) == expected
        ids = [e["event_id"] for e in bridge.events]
        assert len(ids) == len(set(ids))
        await delivery.stop()
    finally:
        await hs.http.close()
        await hs.server.stop()


async def test_no_url_means_no_pushes(hs, bridge):
    delivery = await start_delivery(
        hs,
        appservice("silent", None, r"@bridge_.*:localhost"),
        appservice("bridge", bridge.url, r"@bridge_.*:localhost"),
    )
    try:
        alice, _, room_id = await bridged_room(hs)
        await send(hs, alice, room_id, "hello")
        await bridge.wait_for(lambda: bodies(bridge, room_id) == ["hello"])
        positions = await hs.pool.fetchval(
            "SELECT count(*) FROM appservice_positions WHERE appservice_id = 'silent'"
        )
        assert positions == 0
    finally:
        await delivery.stop()
