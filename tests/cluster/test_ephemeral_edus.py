"""Typing, receipts and presence set through one worker reach other servers
and appservices through another (cluster/ephemeral_follower.py), and so do
device list and signing key updates and to-device messages
(cluster/outbox_wakes.py, the to_device stream): a
deployment whose `front` worker answers the clients and whose `sender`
worker alone sends to other servers and to appservices, a scripted remote
server sharing a room with a local user, and an appservice with
receive_ephemeral (MSC2409) whose ghost is in that room."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from tests.appservice.delivery_setup import appservice_config, registration
from tests.appservice.loopback import LoopbackAppService
from tests.cluster.deployment import DeploymentClient, deployment, until
from tests.federation.conftest import ScriptedRemote
from tests.federation.test_joins import make_join, send_join, sign_join
from tests.federation.test_sender import Inbox, remote_with_inbox
from tests.test_e2e_keys import cross_signing_keys

# The sender worker answers clients too: a change made in its own process
# must reach the remote once, not once per way of hearing it.
ROLES = {
    "front": ["client", "event_persister", "federation_inbound", "media", "background", "pusher"],
    "sender": ["client", "federation_sender", "appservice"],
}
ALICE = "@alice:localhost"
# What the scripted remote needs to know of the server it talks to.
_NAMED = SimpleNamespace(server_name="localhost")


def typing_edus(inbox: Inbox, room_id: str) -> list[bool]:
    return [e["typing"] for e in inbox.edus("m.typing") if e["room_id"] == room_id]


def ephemeral(bridge: LoopbackAppService, edu_type: str) -> list[dict[str, Any]]:
    return [e for e in bridge.ephemeral() if e["type"] == edu_type]


async def test_edus_and_ephemeral_events_leave_through_the_sender_worker(
    database: str, tmp_path: Path
):
    bridge = LoopbackAppService("hs_bridge")
    await bridge.start()
    made: list[ScriptedRemote] = []

    async def remote_factory(*, start: bool = True) -> ScriptedRemote:
        made.append(ScriptedRemote(tmp_path, "r0"))
        if start:
            await made[-1].start()
        return made[-1]

    remote, inbox = await remote_with_inbox(remote_factory)
    appservice = registration("bridge", bridge.url, r"@bridge_.*:localhost", receive_ephemeral=True)
    running = deployment(
        database,
        tmp_path / "data",
        ROLES,
        federation_min_retry_interval_ms=200,
        **appservice_config(tmp_path, appservice),
    )
    try:
        await running.start("front", "sender")

        async def sending() -> bool:
            held = set((await running.duties())["sender"])
            return {"federation-sender", "appservice-sender"} <= held

        await until(sending, 20)
        async with aiohttp.ClientSession() as http:
            cluster = DeploymentClient(http, running, database)
            room_id = await _check(cluster, remote, inbox, bridge)
            await _check_stored_edus(cluster, remote, inbox, room_id)
    finally:
        await running.stop()
        for scripted in made:
            await scripted.stop()
        await bridge.stop()


async def _check(
    cluster: DeploymentClient, remote: ScriptedRemote, inbox: Inbox, bridge: LoopbackAppService
) -> str:
    # The remote talks to the front's federation listener, as to any server.
    port = int(cluster.cluster.workers["front"].federation.rsplit(":", 1)[1])
    front = SimpleNamespace(server=SimpleNamespace(federation_port=port, config=_NAMED))
    await remote.expect_keys_of(front)
    alice = await cluster.register("front", "alice")
    ghost = await cluster.register("front", "bridge_bob")
    status, body = await cluster.call(
        "front", "POST", "/createRoom", alice, {"preset": "public_chat"}
    )
    assert status == 200, body
    room_id = body["room_id"]
    status, body = await cluster.call("front", "POST", f"/rooms/{quote(room_id)}/join", ghost, {})
    assert status == 200, body
    bob = f"@bob:{remote.server_name}"
    status, made = await make_join(remote, front, room_id, bob, ",".join(KNOWN_ROOM_VERSIONS))
    assert status == 200, made
    version = made["room_version"]
    status, joined, _ = await send_join(
        remote, front, room_id, sign_join(remote, made["event"], version), version
    )
    assert status == 200, joined
    room = f"/rooms/{quote(room_id)}"

    async def typing(worker: str, on: bool) -> None:
        status, body = await cluster.call(
            worker, "PUT", f"{room}/typing/{quote(ALICE)}", alice, {"typing": on, "timeout": 30000}
        )
        assert status == 200, body

    # Typing through the front: the sender worker tells the remote, and the
    # appservice who types.
    await typing("front", True)
    await until(_async(lambda: typing_edus(inbox, room_id) == [True]), 10)
    assert inbox.edus("m.typing")[0] == {"room_id": room_id, "user_id": ALICE, "typing": True}
    seen = await bridge.wait_for(lambda: ephemeral(bridge, "m.typing"))
    assert seen[-1] == {"type": "m.typing", "room_id": room_id, "content": {"user_ids": [ALICE]}}

    # A read receipt through the front; the private one stays here.
    event_id = await cluster.send("front", alice, room_id, "read me", "t1")
    for receipt_type in ("m.read.private", "m.read"):
        status, body = await cluster.call(
            "front", "POST", f"{room}/receipt/{receipt_type}/{quote(event_id)}", alice, {}
        )
        assert status == 200, body
    await until(_async(lambda: inbox.edus("m.receipt")), 10)
    (receipt,) = inbox.edus("m.receipt")
    assert receipt[room_id]["m.read"][ALICE]["event_ids"] == [event_id]
    assert all("m.read.private" not in str(t) for t in inbox.transactions)
    await bridge.wait_for(lambda: ephemeral(bridge, "m.receipt"))

    # Presence through the front.
    status, body = await cluster.call(
        "front",
        "PUT",
        f"/presence/{quote(ALICE)}/status",
        alice,
        {"presence": "unavailable", "status_msg": "lunch"},
    )
    assert status == 200, body

    def lunch() -> list[dict[str, Any]]:
        pushed = [p for e in inbox.edus("m.presence") for p in e["push"]]
        return [
            p
            for p in pushed
            if p["user_id"] == ALICE
            and p["presence"] == "unavailable"
            and p.get("status_msg") == "lunch"
        ]

    await until(_async(lunch), 10)
    shown = await bridge.wait_for(
        lambda: [p for p in ephemeral(bridge, "m.presence") if p["sender"] == ALICE]
    )
    assert shown[-1]["content"]["status_msg"] == "lunch"

    # Stopped through the front: the remote and the appservice hear it.
    await typing("front", False)
    await until(_async(lambda: typing_edus(inbox, room_id) == [True, False]), 10)
    await bridge.wait_for(lambda: ephemeral(bridge, "m.typing")[-1]["content"] == {"user_ids": []})

    # Typing through the sender worker's own client listener (each process
    # runs the timers of its typists): each change reaches the remote once.
    await typing("sender", True)
    await until(_async(lambda: typing_edus(inbox, room_id)[2:] == [True]), 10)
    await typing("sender", False)
    await until(_async(lambda: typing_edus(inbox, room_id)[3:] == [False]), 10)
    assert typing_edus(inbox, room_id) == [True, False, True, False]
    assert len(lunch()) == 1 and len(inbox.edus("m.receipt")) == 1
    return room_id


async def _check_stored_edus(
    cluster: DeploymentClient, remote: ScriptedRemote, inbox: Inbox, room_id: str
) -> None:
    """A new device, cross-signing keys and a to-device message, all through
    the front, reach the remote through the sender worker at once: nothing
    else is sent meanwhile that would wake the remote's queue."""
    pdus = len(inbox.pdus())
    status, login = await cluster.call(
        "front",
        "POST",
        "/login",
        body={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "pw-alice",
            "device_id": "NEWPHONE",
            "initial_device_display_name": "New phone",
        },
    )
    assert status == 200, login
    token = login["access_token"]

    def new_device() -> list[dict[str, Any]]:
        return [
            e
            for e in inbox.edus("m.device_list_update")
            if e["user_id"] == ALICE and e["device_id"] == "NEWPHONE"
        ]

    (update,) = await until(_async(new_device), 5)
    assert update["device_display_name"] == "New phone" and not update.get("deleted")

    _, body = cross_signing_keys(ALICE)
    status, answer = await cluster.call("front", "POST", "/keys/device_signing/upload", token, body)
    assert status == 200, answer
    (signing,) = await until(_async(lambda: inbox.edus("m.signing_key_update")), 5)
    assert signing["user_id"] == ALICE
    assert signing["master_key"] == body["master_key"]
    assert signing["self_signing_key"] == body["self_signing_key"]

    bob = f"@bob:{remote.server_name}"
    message = {"messages": {bob: {"BOBDEVICE": {"secret": "s3"}}}}
    status, answer = await cluster.call("front", "PUT", "/sendToDevice/m.test/td1", token, message)
    assert status == 200, answer
    (to_device,) = await until(_async(lambda: inbox.edus("m.direct_to_device")), 5)
    assert to_device["sender"] == ALICE and to_device["type"] == "m.test"
    assert to_device["messages"] == {bob: {"BOBDEVICE": {"secret": "s3"}}}
    # Woken by what was stored, not by a PDU; and each sent once.
    assert len(inbox.pdus()) == pdus
    assert len(new_device()) == 1 and len(inbox.edus("m.signing_key_update")) == 1

    # The sender worker loses its channel to the others: a device added
    # meanwhile is not heard of, and is sent once it listens again.
    lost = (await cluster.cluster.status("sender"))["invalidation_listener_pid"]
    db = await asyncpg.connect(cluster.database)
    try:
        assert await db.fetchval("SELECT pg_terminate_backend($1)", lost)
        status, _ = await cluster.call(
            "front",
            "POST",
            "/login",
            body={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "alice"},
                "password": "pw-alice",
                "device_id": "UNHEARD",
            },
        )
        assert status == 200
    finally:
        await db.close()
    unheard = _async(
        lambda: [e for e in inbox.edus("m.device_list_update") if e["device_id"] == "UNHEARD"]
    )
    await until(unheard, 10)
    listener = (await cluster.cluster.status("sender"))["invalidation_listener_pid"]
    assert listener not in (None, lost)


def _async(check: Any) -> Any:
    """`until` polls a coroutine function."""

    async def poll() -> Any:
        return check()

    return poll
