"""The outbound federation sender, seen from a scripted remote server: local
events arrive as signed PDUs in /send transactions of bounded size, a server
that was down is caught up, a restart resumes, and EDUs have the spec's shapes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from aiohttp import web
from signedjson.key import generate_signing_key

from homeserver.events.hashing import check_content_hash, compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import verify_event_signatures
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.test_joins import make_join, send_join, sign_join
from tests.test_e2e_keys import Device, cross_signing_keys

SEND = "/_matrix/federation/v1/send/{txn_id}"
# Fast backoff, so that a test sees several retries in a second or two.
SENDER_CONFIG = {"federation_insecure": True, "federation_min_retry_interval_ms": 200}


@attrs.define
class Inbox:
    """The /send transactions the scripted remote accepted, and how it behaves."""

    transactions: list[dict[str, Any]] = attrs.Factory(list)
    txn_ids: list[str] = attrs.Factory(list)
    # Times (monotonic) of transactions answered with 500 while down.
    refused_at: list[float] = attrs.Factory(list)
    down: bool = False
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def pdus(self) -> list[dict[str, Any]]:
        return [pdu for t in self.transactions for pdu in t["pdus"]]

    def edus(self, edu_type: str) -> list[dict[str, Any]]:
        return [
            e["content"] for t in self.transactions for e in t["edus"] if e["edu_type"] == edu_type
        ]


async def remote_with_inbox(remote_factory: Any) -> tuple[ScriptedRemote, Inbox]:
    remote: ScriptedRemote = await remote_factory(start=False)
    inbox = Inbox()

    async def respond(request: web.Request, origin: str, body: Any) -> Any:
        inbox.in_flight += 1
        inbox.max_in_flight = max(inbox.max_in_flight, inbox.in_flight)
        try:
            if inbox.delay_s:
                await asyncio.sleep(inbox.delay_s)
            if inbox.down:
                inbox.refused_at.append(time.monotonic())
                raise web.HTTPInternalServerError(text='{"errcode": "M_UNKNOWN"}')
            assert origin == "localhost" and body["origin"] == "localhost"
            inbox.txn_ids.append(request.match_info["txn_id"])
            inbox.transactions.append(body)
            return {"pdus": {}}
        finally:
            inbox.in_flight -= 1

    remote.app.router.add_put(SEND, remote.handler(respond))
    await remote.start()
    return remote, inbox


async def wait_until(check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def wait_until_emptied(hs: RunningServer, outbox: str) -> None:
    """An outbox row is deleted once the remote has answered the transaction
    that carried it, a moment after the remote's inbox recorded it."""
    deadline = time.monotonic() + 15
    while await hs.pool.fetchval(f"SELECT count(*) FROM {outbox}"):
        assert time.monotonic() < deadline, f"{outbox} was never emptied"
        await asyncio.sleep(0.05)


@attrs.define
class Local:
    user_id: str
    token: str
    device_id: str


async def register(hs: RunningServer, name: str) -> Local:
    body = await hs.register(name)
    return Local(body["user_id"], body["access_token"], body["device_id"])


async def create_room(hs: RunningServer, user: Local) -> str:
    status, body = await hs.request(
        "POST", "/_matrix/client/v3/createRoom", token=user.token, json={"preset": "public_chat"}
    )
    assert status == 200, body
    return body["room_id"]


async def join_remote_user(
    hs: RunningServer, remote: ScriptedRemote, room_id: str, user_id: str
) -> None:
    """The remote's user joins our room with make_join / send_join, as a real
    server would. The join is the remote's event: the sender never sends it."""
    version = await room_version(hs, room_id)
    status, made = await make_join(remote, hs, room_id, user_id, version)
    assert status == 200, made
    status, joined, _ = await send_join(
        remote, hs, room_id, sign_join(remote, made["event"], version), version
    )
    assert status == 200, joined


async def join_unreachable_remote_user_for_test(
    hs: RunningServer, room_id: str, user_id: str
) -> None:
    """Put the join of a user of a server that is not listening (so no
    handshake is possible) into a local room, through the pipeline's public
    send interface (built and signed here). Its sender is remote, so the
    sender never sends it."""
    assert hs.server.pipeline is not None
    await hs.server.pipeline.send(
        room_id,
        type="m.room.member",
        sender=user_id,
        content={"membership": "join"},
        state_key=user_id,
    )


async def send_message(hs: RunningServer, user: Local, room_id: str, body: str) -> str:
    status, sent = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{body}-{time.monotonic_ns()}",
        token=user.token,
        json={"msgtype": "m.text", "body": body},
    )
    assert status == 200, sent
    return sent["event_id"]


def event_ids(pdus: list[dict[str, Any]], version: str) -> list[str]:
    return [compute_event_id(p, KNOWN_ROOM_VERSIONS[version]) for p in pdus]


async def room_version(hs: RunningServer, room_id: str) -> str:
    return await hs.pool.fetchval("SELECT room_version FROM rooms WHERE room_id = $1", room_id)


async def setup(
    server_factory: Any, remote_factory: Any
) -> tuple[RunningServer, ScriptedRemote, Inbox, Local, str]:
    """Our server, a remote, alice on our side, and bob of the remote's in her room."""
    hs = await server_factory(**SENDER_CONFIG)
    remote, inbox = await remote_with_inbox(remote_factory)
    await remote.expect_keys_of(hs)
    alice = await register(hs, "alice")
    room_id = await create_room(hs, alice)
    await join_remote_user(hs, remote, room_id, f"@bob:{remote.server_name}")
    return hs, remote, inbox, alice, room_id


async def second_room(hs: RunningServer, remote: ScriptedRemote, alice: Local) -> str:
    """Another room of alice's, with the remote's bob in it too."""
    room_id = await create_room(hs, alice)
    await join_remote_user(hs, remote, room_id, f"@bob:{remote.server_name}")
    return room_id


async def stop(hs: RunningServer) -> None:
    """Stop our server (a test then starts it again on the same database)."""
    await hs.http.close()
    await hs.server.stop()


async def test_a_local_message_reaches_the_remote_as_its_signed_pdu(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    version = await room_version(hs, room_id)
    event_id = await send_message(hs, alice, room_id, "hello")

    await wait_until(lambda: bool(inbox.pdus()))
    # Only the message: the room's earlier events predate bob, and bob's join
    # is not ours to send.
    (pdu,) = inbox.pdus()
    (transaction,) = inbox.transactions
    assert transaction["origin"] == "localhost"
    assert abs(transaction["origin_server_ts"] - time.time() * 1000) < 60_000
    assert check_content_hash(pdu)
    verify_event_signatures(
        pdu,
        KNOWN_ROOM_VERSIONS[version],
        lambda server, key_id: remote.peer_keys.get(key_id) if server == "localhost" else None,
    )
    assert compute_event_id(pdu, KNOWN_ROOM_VERSIONS[version]) == event_id
    stored = await hs.pool.fetchval("SELECT json FROM events WHERE event_id = $1", event_id)
    assert pdu == json.loads(stored)
    assert pdu["content"] == {"msgtype": "m.text", "body": "hello"}
    # Acknowledged: a later start would not send it again.
    acknowledged = await hs.pool.fetchval(
        "SELECT last_successful_stream FROM federation_destination_positions"
        " WHERE destination = $1",
        remote.server_name,
    )
    assert acknowledged == await hs.pool.fetchval(
        "SELECT stream_ordering FROM events WHERE event_id = $1", event_id
    )


async def test_a_slow_remote_gets_transactions_of_at_most_50_pdus_in_order(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_a = await setup(server_factory, remote_factory)
    room_b = await second_room(hs, remote, alice)
    version = await room_version(hs, room_a)
    inbox.delay_s = 0.3

    sent: dict[str, list[str]] = {room_a: [], room_b: []}
    for i in range(120):
        room_id = room_a if i % 3 else room_b
        sent[room_id].append(await send_message(hs, alice, room_id, f"m{i}"))

    await wait_until(lambda: len(inbox.pdus()) >= 120, timeout_s=30)
    await asyncio.sleep(0.5)
    pdus = inbox.pdus()
    assert len(pdus) == 120
    assert all(len(t["pdus"]) <= 50 for t in inbox.transactions)
    assert len(inbox.transactions) >= 3
    assert inbox.max_in_flight == 1
    assert len(set(inbox.txn_ids)) == len(inbox.txn_ids)
    for room_id, ids in sent.items():
        arrived = event_ids([p for p in pdus if p["room_id"] == room_id], version)
        assert arrived == ids


async def test_a_remote_that_was_down_is_caught_up_with_the_latest_event_per_room(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_a = await setup(server_factory, remote_factory)
    room_b = await second_room(hs, remote, alice)
    version = await room_version(hs, room_a)
    inbox.down = True

    await send_message(hs, alice, room_a, "a1")
    await wait_until(lambda: len(inbox.refused_at) >= 1)
    await send_message(hs, alice, room_a, "a2")
    latest_a = await send_message(hs, alice, room_a, "a3")
    latest_b = await send_message(hs, alice, room_b, "b1")
    await wait_until(lambda: len(inbox.refused_at) >= 4)
    # Backoff: every wait at least ~1.6 times the one before (doubling, ±10% jitter).
    gaps = [b - a for a, b in zip(inbox.refused_at, inbox.refused_at[1:], strict=False)]
    assert gaps[0] >= 0.15
    assert all(later >= earlier * 1.4 for earlier, later in zip(gaps, gaps[1:], strict=False))
    assert inbox.pdus() == []

    inbox.down = False
    await wait_until(lambda: len(inbox.pdus()) >= 2)
    await asyncio.sleep(0.3)
    # The newest event of each room; the remote fetches the rest itself.
    assert sorted(event_ids(inbox.pdus(), version)) == sorted([latest_a, latest_b])

    # Caught up: new events flow as before, once each.
    after = await send_message(hs, alice, room_a, "a4")
    await wait_until(lambda: len(inbox.pdus()) >= 3)
    await asyncio.sleep(0.3)
    assert event_ids(inbox.pdus(), version)[2:] == [after]


async def test_a_restart_resumes_and_catches_up_where_it_left_off(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    version = await room_version(hs, room_id)
    delivered = await send_message(hs, alice, room_id, "before")
    await wait_until(lambda: len(inbox.pdus()) == 1)

    inbox.down = True
    missed = await send_message(hs, alice, room_id, "while down 1")
    latest = await send_message(hs, alice, room_id, "while down 2")
    await wait_until(lambda: len(inbox.refused_at) >= 1)
    await stop(hs)

    inbox.down = False
    hs = await server_factory(**SENDER_CONFIG)
    await wait_until(lambda: latest in event_ids(inbox.pdus(), version))
    after = await send_message(hs, alice, room_id, "after")
    await wait_until(lambda: after in event_ids(inbox.pdus(), version))
    await asyncio.sleep(0.3)
    # Caught up with the room's latest event (catch-up sends the forward
    # extremity only) or, when the stop came before the old sender had fallen
    # into catch-up for both messages, with every missed event: in order and
    # none twice, either way.
    assert event_ids(inbox.pdus(), version) in (
        [delivered, latest, after],
        [delivered, missed, latest, after],
    )


async def test_typing_receipt_and_presence_edus(server_factory: Any, remote_factory: Any) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    event_id = await send_message(hs, alice, room_id, "read me")

    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/typing/{alice.user_id}",
        token=alice.token,
        json={"typing": True, "timeout": 30000},
    )
    assert status == 200
    await wait_until(lambda: bool(inbox.edus("m.typing")))
    assert inbox.edus("m.typing")[0] == {
        "room_id": room_id,
        "user_id": alice.user_id,
        "typing": True,
    }

    status, _ = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/receipt/m.read.private/{event_id}",
        token=alice.token,
        json={},
    )
    assert status == 200
    status, _ = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/receipt/m.read/{event_id}",
        token=alice.token,
        json={},
    )
    assert status == 200
    await wait_until(lambda: bool(inbox.edus("m.receipt")))
    (receipt,) = inbox.edus("m.receipt")
    data = receipt[room_id]["m.read"][alice.user_id]["data"]
    assert receipt == {
        room_id: {"m.read": {alice.user_id: {"event_ids": [event_id], "data": data}}}
    }
    assert set(data) == {"ts"} and isinstance(data["ts"], int)

    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/presence/{alice.user_id}/status",
        token=alice.token,
        json={"presence": "unavailable", "status_msg": "lunch"},
    )
    assert status == 200

    def lunch() -> list[dict[str, Any]]:
        return [
            p for e in inbox.edus("m.presence") for p in e["push"] if p.get("status_msg") == "lunch"
        ]

    await wait_until(lambda: bool(lunch()))
    pushed = lunch()[-1]
    assert pushed["user_id"] == alice.user_id and pushed["presence"] == "unavailable"
    assert isinstance(pushed["last_active_ago"], int)

    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/typing/{alice.user_id}",
        token=alice.token,
        json={"typing": False},
    )
    assert status == 200
    await wait_until(lambda: len(inbox.edus("m.typing")) >= 2)
    assert inbox.edus("m.typing")[-1]["typing"] is False
    # Private receipts never leave this server.
    assert all("m.read.private" not in json.dumps(t) for t in inbox.transactions)


async def send_to_device(hs: RunningServer, user: Local, txn_id: str, messages: Any) -> None:
    status, body = await hs.request(
        "PUT",
        f"/_matrix/client/v3/sendToDevice/m.test/{txn_id}",
        token=user.token,
        json={"messages": messages},
    )
    assert status == 200, body


async def test_to_device_messages_arrive_once_in_order_and_at_most_100_edus_a_transaction(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    bob = f"@bob:{remote.server_name}"
    inbox.delay_s = 0.3
    for i in range(150):
        await send_to_device(hs, alice, f"t{i}", {bob: {"BOBDEVICE": {"n": i}}})

    await wait_until(lambda: len(inbox.edus("m.direct_to_device")) >= 150, timeout_s=30)
    inbox.delay_s = 0
    edus = inbox.edus("m.direct_to_device")
    assert [e["messages"] for e in edus] == [{bob: {"BOBDEVICE": {"n": i}}} for i in range(150)]
    assert all(e["sender"] == alice.user_id and e["type"] == "m.test" for e in edus)
    assert len({e["message_id"] for e in edus}) == 150
    assert all(len(t["edus"]) <= 100 for t in inbox.transactions)
    await wait_until_emptied(hs, "to_device_outbox")

    # After a restart nothing is sent again: the next transaction holds only
    # what is new.
    await stop(hs)
    hs = await server_factory(**SENDER_CONFIG)
    await send_to_device(hs, alice, "after-restart", {bob: {"*": {"n": "new"}}})
    await wait_until(lambda: len(inbox.edus("m.direct_to_device")) >= 151)
    await asyncio.sleep(0.3)
    assert inbox.edus("m.direct_to_device")[150:] == [
        {
            "sender": alice.user_id,
            "type": "m.test",
            "message_id": inbox.edus("m.direct_to_device")[150]["message_id"],
            "messages": {bob: {"*": {"n": "new"}}},
        }
    ]


async def test_to_device_messages_wait_for_a_remote_that_is_down(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    bob = f"@bob:{remote.server_name}"
    inbox.down = True
    await send_to_device(hs, alice, "t1", {bob: {"D": {"secret": 1}}})
    await wait_until(lambda: len(inbox.refused_at) >= 1)
    await stop(hs)

    inbox.down = False
    hs = await server_factory(**SENDER_CONFIG)
    await wait_until(lambda: bool(inbox.edus("m.direct_to_device")))
    await asyncio.sleep(0.3)
    assert [e["messages"] for e in inbox.edus("m.direct_to_device")] == [
        {bob: {"D": {"secret": 1}}}
    ]
    await wait_until_emptied(hs, "to_device_outbox")


@pytest.mark.parametrize("membership", ["leave", "ban"])
async def test_a_kicked_remote_user_hears_of_it(
    server_factory: Any, remote_factory: Any, membership: str
) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    bob = f"@bob:{remote.server_name}"
    action = "kick" if membership == "leave" else "ban"
    status, body = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/{action}",
        token=alice.token,
        json={"user_id": bob},
    )
    assert status == 200, body
    await wait_until(lambda: bool(inbox.pdus()))
    (pdu,) = inbox.pdus()
    assert pdu["state_key"] == bob and pdu["content"]["membership"] == membership


async def test_a_room_is_sent_to_the_servers_joined_at_each_message(
    server_factory: Any, remote_factory: Any
) -> None:
    """The sender remembers a room's servers between messages: a remote that
    joins a room which was all local gets the next message, and one kicked
    out gets nothing more until it joins again."""
    hs = await server_factory(**SENDER_CONFIG)
    remote, inbox = await remote_with_inbox(remote_factory)
    await remote.expect_keys_of(hs)
    alice = await register(hs, "alice")
    room_id = await create_room(hs, alice)
    bob = f"@bob:{remote.server_name}"
    await send_message(hs, alice, room_id, "alone")
    await send_message(hs, alice, room_id, "still-alone")

    await join_remote_user(hs, remote, room_id, bob)
    await send_message(hs, alice, room_id, "joined")
    await wait_until(lambda: len(inbox.pdus()) == 1)
    status, body = await hs.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/kick",
        token=alice.token,
        json={"user_id": bob},
    )
    assert status == 200, body
    await send_message(hs, alice, room_id, "kicked")
    await join_remote_user(hs, remote, room_id, bob)
    await send_message(hs, alice, room_id, "back")
    await wait_until(lambda: len(inbox.pdus()) >= 3)

    # In stream order: "kicked" would come before "back" had it been sent.
    seen = [
        (p["type"], p["content"].get("body", p["content"].get("membership"))) for p in inbox.pdus()
    ]
    assert seen == [
        ("m.room.message", "joined"),
        ("m.room.member", "leave"),
        ("m.room.message", "back"),
    ]


async def test_device_list_and_signing_key_updates(
    server_factory: Any, remote_factory: Any
) -> None:
    hs, remote, inbox, alice, room_id = await setup(server_factory, remote_factory)
    laptop = Device(
        hs, alice.user_id, alice.device_id, alice.token, generate_signing_key(alice.device_id)
    )
    uploaded = laptop.device_keys()
    await laptop.ok("POST", "/keys/upload", {"device_keys": uploaded})
    await wait_until(lambda: bool(inbox.edus("m.device_list_update")))
    (first,) = inbox.edus("m.device_list_update")
    stream_id = first["stream_id"]
    assert first == {
        "user_id": alice.user_id,
        "device_id": alice.device_id,
        "stream_id": stream_id,
        "prev_id": [stream_id - 1] if stream_id > 1 else [],
        "deleted": False,
        "keys": uploaded,
    }

    status, login = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "secret",
            "initial_device_display_name": "phone",
        },
    )
    assert status == 200, login
    phone = login["device_id"]
    await wait_until(lambda: len(inbox.edus("m.device_list_update")) >= 2)
    assert inbox.edus("m.device_list_update")[1] == {
        "user_id": alice.user_id,
        "device_id": phone,
        "device_display_name": "phone",
        "stream_id": stream_id + 1,
        "prev_id": [stream_id],
        "deleted": False,
    }

    status, _ = await hs.request(
        "POST", "/_matrix/client/v3/logout", token=login["access_token"], json={}
    )
    assert status == 200
    await wait_until(lambda: len(inbox.edus("m.device_list_update")) >= 3)
    assert inbox.edus("m.device_list_update")[2] == {
        "user_id": alice.user_id,
        "device_id": phone,
        "stream_id": stream_id + 2,
        "prev_id": [stream_id + 1],
        "deleted": True,
    }

    _, body = cross_signing_keys(alice.user_id)
    await laptop.ok("POST", "/keys/device_signing/upload", body)
    await wait_until(lambda: bool(inbox.edus("m.signing_key_update")))
    assert inbox.edus("m.signing_key_update") == [
        {
            "user_id": alice.user_id,
            "master_key": body["master_key"],
            "self_signing_key": body["self_signing_key"],
        }
    ]
    await wait_until_emptied(hs, "federation_edu_outbox")


async def test_a_remote_refusing_connections_is_backed_off_then_caught_up(
    server_factory: Any, remote_factory: Any
) -> None:
    hs = await server_factory(**SENDER_CONFIG)
    # Bound but not listening yet: connections to it are refused.
    remote: ScriptedRemote = await remote_factory(start=False)
    inbox = Inbox()

    async def respond(request: web.Request, origin: str, body: Any) -> Any:
        inbox.transactions.append(body)
        return {"pdus": {}}

    remote.app.router.add_put(SEND, remote.handler(respond))
    alice = await register(hs, "alice")
    room_id = await create_room(hs, alice)
    await join_unreachable_remote_user_for_test(hs, room_id, f"@bob:{remote.server_name}")
    version = await room_version(hs, room_id)
    await send_message(hs, alice, room_id, "first")
    latest = await send_message(hs, alice, room_id, "second")

    async def retry_interval() -> int:
        return (
            await hs.pool.fetchval(
                "SELECT retry_interval_ms FROM federation_destinations WHERE destination = $1",
                remote.server_name,
            )
            or 0
        )

    deadline = time.monotonic() + 10
    while await retry_interval() < 400:
        assert time.monotonic() < deadline, "no backoff recorded"
        await asyncio.sleep(0.05)

    await remote.start()
    await remote.expect_keys_of(hs)
    await wait_until(lambda: bool(inbox.transactions))
    await asyncio.sleep(0.3)
    assert event_ids(inbox.pdus(), version) == [latest]
    assert await retry_interval() == 0
