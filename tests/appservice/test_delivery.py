"""Pushes to an appservice (PUT /_matrix/app/v1/transactions/{txnId}) as a
loopback appservice sees them: the events of rooms it is interested in, in
order, with its hs_token, at most 100 a transaction, nothing lost while it is
down or while our server restarts."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from homeserver.appservice.delivery.queue import backoff_s
from tests.appservice.delivery_setup import appservice_config, registration, start_bridged
from tests.appservice.loopback import LoopbackAppService
from tests.conftest import make_config, start_server

BRIDGE_USERS = r"@bridge_.*:localhost"

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


async def bridged_hs(server_factory: Any, tmp_path: Path, bridge: Any, **fields: Any) -> Any:
    return await start_bridged(
        server_factory, tmp_path, registration("bridge", bridge.url, BRIDGE_USERS, **fields)
    )


async def test_events_of_interesting_rooms_arrive_in_order_with_the_hs_token(
    server_factory, tmp_path, bridge
):
    hs = await bridged_hs(server_factory, tmp_path, bridge)
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


async def test_an_invite_of_its_user_carries_the_rooms_stripped_state(
    server_factory, tmp_path, bridge
):
    hs = await bridged_hs(server_factory, tmp_path, bridge)
    alice = (await hs.register("alice"))["access_token"]
    await hs.register("bridge_zed")
    room_id = await create_room(hs, alice, name="Invitation", preset="private_chat")
    status, body = await hs.request(
        "POST",
        f"{V3}/rooms/{room_id}/invite",
        token=alice,
        json={"user_id": "@bridge_zed:localhost"},
    )
    assert status == 200, body
    invite = await bridge.wait_for(
        lambda: next((e for e in bridge.events if e["type"] == "m.room.member"), None)
    )
    assert invite["state_key"] == "@bridge_zed:localhost"
    assert invite["content"]["membership"] == "invite"
    stripped = {e["type"]: e for e in invite["unsigned"]["invite_room_state"]}
    assert stripped["m.room.name"]["content"] == {"name": "Invitation"}
    assert stripped["m.room.join_rules"]["content"]["join_rule"] == "invite"
    # The create event goes whole (a full PDU), as in the invites of federation.
    assert "room_version" in stripped["m.room.create"]["content"]
    assert "signatures" in stripped["m.room.create"]


async def test_a_room_named_by_alias_or_id_namespace_is_interesting(
    server_factory, tmp_path, bridge
):
    # The room ids are not known before the server starts: a namespace of
    # every room id holding "bridged" cannot match, so create rooms first
    # on a server without the appservice, then restart with it.
    config = appservice_config(tmp_path)
    hs = await server_factory(**config)
    alice = (await hs.register("alice"))["access_token"]
    by_alias = await create_room(hs, alice, room_alias_name="irc_chan")
    by_id = await create_room(hs, alice)
    neither = await create_room(hs, alice)
    await hs.http.close()
    await hs.server.stop()
    hs = await bridged_hs(
        server_factory,
        tmp_path,
        bridge,
        aliases=[r"#irc_.*:localhost"],
        rooms=[re.escape(by_id)],
    )
    for room_id in (neither, by_alias, by_id):
        await send(hs, alice, room_id, "hello")
    await bridge.wait_for(lambda: bodies(bridge, by_alias) and bodies(bridge, by_id))
    assert not bodies(bridge, neither)


async def test_an_alias_published_later_makes_a_room_interesting(server_factory, tmp_path, bridge):
    hs = await bridged_hs(server_factory, tmp_path, bridge, aliases=[r"#irc_.*:localhost"])
    alice = (await hs.register("alice"))["access_token"]
    room_id = await create_room(hs, alice)
    await send(hs, alice, room_id, "before")
    status, body = await hs.request(
        "PUT",
        f"{V3}/directory/room/%23irc_late:localhost",
        token=alice,
        json={"room_id": room_id},
    )
    assert status == 200, body
    await send(hs, alice, room_id, "now bridged")
    # Interest is judged on the room as it is when the delivery reads the
    # stream (as Synapse), so "before" may come too if the delivery lagged.
    await bridge.wait_for(lambda: "now bridged" in bodies(bridge, room_id))


async def test_at_most_100_events_a_transaction(server_factory, tmp_path, bridge):
    hs = await bridged_hs(server_factory, tmp_path, bridge)
    alice, _, room_id = await bridged_room(hs)
    await bridge.wait_for(lambda: bridge.events)
    bridge.failing = True
    for i in range(130):
        await send(hs, alice, room_id, f"m{i}")
    bridge.failing = False
    await ping(hs)
    await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == 130)
    assert bodies(bridge, room_id) == [f"m{i}" for i in range(130)]
    assert max(len(t.body["events"]) for t in bridge.transactions) == 100


async def ping(hs: Any) -> None:
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v1/appservice/bridge/ping",
        token="as_bridge",
        json={"transaction_id": "ping-1"},
    )
    assert status == 200, body


async def test_a_successful_ping_retries_at_once(server_factory, tmp_path, bridge):
    hs = await bridged_hs(server_factory, tmp_path, bridge)
    alice, _, room_id = await bridged_room(hs)
    await bridge.wait_for(lambda: bridge.events)
    bridge.failing = True
    await send(hs, alice, room_id, "held back")
    # Two refusals in a row: the next attempt is due backoff_s(2) later.
    await bridge.wait_for(lambda: bridge.attempts - len(bridge.transactions) >= 2)
    refused_at = time.monotonic()
    bridge.failing = False
    await ping(hs)
    await bridge.wait_for(lambda: bodies(bridge, room_id) == ["held back"])
    assert time.monotonic() - refused_at < backoff_s(2)


async def test_an_appservice_that_was_down_gets_everything_in_order(
    server_factory, tmp_path, bridge
):
    hs = await bridged_hs(server_factory, tmp_path, bridge)
    alice, bob, room_id = await bridged_room(hs)
    await send(hs, alice, room_id, "before")
    await bridge.wait_for(lambda: bodies(bridge, room_id) == ["before"])
    await bridge.stop()
    for i in range(10):
        await send(hs, alice, room_id, f"while down {i}")
        await send(hs, bob, room_id, f"ghost {i}")
    await bridge.start()
    await ping(hs)
    expected = ["before"] + [m for i in range(10) for m in (f"while down {i}", f"ghost {i}")]
    await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == len(expected))
    assert bodies(bridge, room_id) == expected


async def test_nothing_is_lost_across_a_restart_of_our_server(database, tmp_path, bridge):
    config = make_config(
        database,
        tmp_path,
        **appservice_config(tmp_path, registration("bridge", bridge.url, BRIDGE_USERS)),
    )
    hs = await start_server(config)
    try:
        alice, _, room_id = await bridged_room(hs)
        await send(hs, alice, room_id, "first")
        await bridge.wait_for(lambda: bodies(bridge, room_id) == ["first"])
        bridge.failing = True
        for i in range(5):
            await send(hs, alice, room_id, f"missed {i}")
        # A transaction is in flight (stored, refused) when the server stops.
        await bridge.wait_for(lambda: bridge.attempts > len(bridge.transactions))
    finally:
        await hs.http.close()
        await hs.server.stop()
    bridge.failing = False
    hs = await start_server(config)
    try:
        await send(hs, alice, room_id, "after restart")
        expected = ["first", *(f"missed {i}" for i in range(5)), "after restart"]
        await bridge.wait_for(lambda: len(bodies(bridge, room_id)) == len(expected))
        assert bodies(bridge, room_id) == expected
        ids = [e["event_id"] for e in bridge.events]
        assert len(ids) == len(set(ids))
    finally:
        await hs.http.close()
        await hs.server.stop()


async def test_no_url_means_no_pushes(server_factory, tmp_path, bridge):
    hs = await start_bridged(
        server_factory,
        tmp_path,
        registration("silent", None, BRIDGE_USERS),
        registration("bridge", bridge.url, BRIDGE_USERS),
    )
    alice, _, room_id = await bridged_room(hs)
    await send(hs, alice, room_id, "hello")
    await bridge.wait_for(lambda: bodies(bridge, room_id) == ["hello"])
    positions = await hs.pool.fetchval(
        "SELECT count(*) FROM appservice_positions WHERE appservice_id = 'silent'"
    )
    assert positions == 0
