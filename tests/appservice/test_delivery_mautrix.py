"""A real appservice built on mautrix-python's `mautrix.appservice` (the
framework of the mautrix bridges), on loopback: it receives its transactions
in order, typing, receipts and to-device with receive_ephemeral; a matrix-nio
client sees the ghosts' messages and the appservice sees the client's; the
appservice is stopped for a while, our server restarts, and it still gets
every missed event in order. The bridge registers and drives its ghost
itself (`?user_id=`, `?ts=`) and pings the server when it is back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nio
import pytest
from mautrix.appservice import AppService
from mautrix.appservice.state_store.file import FileASStateStore
from mautrix.types import Event, EventType, MessageType, TextMessageEventContent

from tests.appservice.delivery_setup import appservice_config, registration
from tests.conftest import make_config, start_server

BRIDGE_USERS = r"@bridge_.*:localhost"
# A time on the other network, long before now.
BRIDGED_TS = 1_600_000_000_000
# mautrix passes aiohttp the event loop, which aiohttp deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:loop argument is deprecated")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MautrixBridge:
    """A mautrix AppService and what its handlers saw, in order."""

    def __init__(self, hs_url: str, port: int, state_dir: Path) -> None:
        self.port = port
        self.events: list[Event] = []
        self.to_device: list[Any] = []
        self._changed = asyncio.Event()
        self.service = AppService(
            server=hs_url,
            domain="localhost",
            as_token="as_bridge",
            hs_token="hs_bridge",
            bot_localpart="bridge_bot",
            id="bridge",
            state_store=FileASStateStore(path=str(state_dir / "mx-state.json"), binary=False),
            ephemeral_events=True,
            # mautrix reads to-device messages (and MSC3202 data) only with this.
            encryption_events=True,
        )
        self.service.synchronous_handlers = True
        self.service.matrix_event_handler(self._on_event)
        self.service.to_device_handler = self._on_to_device

    async def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def _on_to_device(self, event: Any) -> None:
        self.to_device.append(event)
        self._changed.set()

    async def start(self) -> None:
        await self.service.start(host="127.0.0.1", port=self.port)

    async def stop(self) -> None:
        await self.service.stop()

    def messages(self, room_id: str) -> list[str]:
        return [
            e.content.body
            for e in self.events
            if e.type == EventType.ROOM_MESSAGE and e.room_id == room_id
        ]

    def of_type(self, event_type: EventType) -> list[Event]:
        return [e for e in self.events if e.type == event_type]

    async def wait_for(self, check: Callable[[], Any], within_s: float = 15.0) -> Any:
        async with asyncio.timeout(within_s):
            while not (result := check()):
                self._changed.clear()
                await self._changed.wait()
        return result


async def nio_client(hs: Any, name: str) -> nio.AsyncClient:
    body = await hs.register(name)
    client = nio.AsyncClient(hs.url, body["user_id"])
    client.restore_login(body["user_id"], body["device_id"], body["access_token"])
    return client


async def test_mautrix_appservice_and_a_nio_client(database, tmp_path):
    port = free_port()
    config = make_config(
        database,
        tmp_path,
        **appservice_config(
            tmp_path,
            registration(
                "bridge", f"http://127.0.0.1:{port}", BRIDGE_USERS, receive_ephemeral=True
            ),
        ),
    )
    hs = await start_server(config)
    bridge = MautrixBridge(hs.url, port, tmp_path)
    await bridge.start()
    alice = await nio_client(hs, "alice")
    # A user of the namespace with a device of its own, for to-device.
    carol = await hs.register("bridge_carol")
    try:
        created = await alice.room_create(name="bridged", preset=nio.RoomPreset.public_chat)
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        # The bridge registers its ghost and speaks as it, at the remote network's time.
        ghost = bridge.service.intent.user("@bridge_bob:localhost")
        await ghost.ensure_registered()
        await ghost.ensure_joined(room_id)
        for i in range(3):
            await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"a{i}"})
        await bridge.wait_for(lambda: bridge.messages(room_id) == ["a0", "a1", "a2"])

        # The ghost's message reaches the nio client, with its bridged time.
        await ghost.send_message_event(
            room_id,
            EventType.ROOM_MESSAGE,
            TextMessageEventContent(msgtype=MessageType.TEXT, body="from the bridge"),
            timestamp=BRIDGED_TS,
        )
        async with asyncio.timeout(15):
            seen: dict[str, int] = {}
            while "from the bridge" not in seen:
                sync = await alice.sync(timeout=5000)
                assert isinstance(sync, nio.SyncResponse), sync
                room = sync.rooms.join.get(room_id)
                if room is not None:
                    seen.update(
                        {getattr(e, "body", ""): e.server_timestamp for e in room.timeline.events}
                    )
        assert seen["from the bridge"] == BRIDGED_TS
        # The bridge sees its own ghost's message too, after alice's.
        await bridge.wait_for(lambda: bridge.messages(room_id)[-1:] == ["from the bridge"])

        # Ephemeral: typing, a read receipt, a to-device message to the ghost.
        await alice.room_typing(room_id, True, timeout=30000)
        typing = await bridge.wait_for(lambda: bridge.of_type(EventType.TYPING))
        assert "@alice:localhost" in typing[-1].content.user_ids
        last = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "read me"}
        )
        await alice.room_read_markers(room_id, last.event_id, last.event_id)
        receipts = await bridge.wait_for(lambda: bridge.of_type(EventType.RECEIPT))
        assert last.event_id in receipts[-1].content
        status, body = await hs.request(
            "PUT",
            "/_matrix/client/v3/sendToDevice/org.example.ping/td1",
            token=alice.access_token,
            json={"messages": {"@bridge_carol:localhost": {carol["device_id"]: {"n": 1}}}},
        )
        assert status == 200, body
        to_device = await bridge.wait_for(lambda: bridge.to_device)
        assert to_device[0].sender == "@alice:localhost"
        assert to_device[0].to_user_id == "@bridge_carol:localhost"
        assert to_device[0].to_device_id == carol["device_id"]

        # The bridge goes away; our server restarts while it is away.
        await bridge.stop()
        for i in range(3):
            await alice.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": f"missed {i}"}
            )
        await hs.http.close()
        await hs.server.stop()
        hs = await start_server(config)
        alice.homeserver = hs.url
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "later"})
        bridge = MautrixBridge(hs.url, port, tmp_path)
        await bridge.start()
        # Its ping tells the server it is back: the delivery retries at once.
        await bridge.service.ping_self()
        await bridge.wait_for(
            lambda: bridge.messages(room_id) == ["missed 0", "missed 1", "missed 2", "later"]
        )
    finally:
        await alice.close()
        await bridge.stop()
        await hs.http.close()
        await hs.server.stop()
