"""The same flows driven from Node.js: the bridge's receiving side is
matrix-appservice, the appservice framework that matrix-appservice-bridge is
built on (its AppService). matrix-appservice-bridge itself cannot be loaded
here: its bot SDK requires the native matrix-sdk-crypto binding, which its
install script downloads from outside the package registry.

tests/interop/js/appservice_flow.mjs listens for transactions on a port the
registration names, sends as a user and as a ghost, reads typing and a
receipt, goes away and comes back; it prints what it saw."""

from __future__ import annotations

import json

from tests.appservice.delivery_setup import registration, start_bridged
from tests.appservice.test_delivery import bridged_room
from tests.appservice.test_delivery_mautrix import free_port
from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "appservice_flow.mjs"


async def test_matrix_appservice_node_receives_everything_in_order(server_factory, tmp_path):
    port = free_port()
    hs = await start_bridged(
        server_factory,
        tmp_path,
        registration(
            "bridge", f"http://127.0.0.1:{port}", r"@bridge_.*:localhost", receive_ephemeral=True
        ),
    )
    alice, ghost, room_id = await bridged_room(hs)
    setup = {
        "port": port,
        "hs_token": "hs_bridge",
        "as_token": "as_bridge",
        "appservice_id": "bridge",
        "alice_token": alice,
        "ghost_token": ghost,
        "room_id": room_id,
    }
    result = await run_node_script(SCRIPT, hs.url, json.dumps(setup))
    assert result["bodies"] == [
        "a0",
        "a1",
        "a2",
        "from the ghost",
        "read me",
        "missed 0",
        "missed 1",
        "missed 2",
    ]
    senders = [e["sender"] for e in result["events"] if e["type"] == "m.room.message"]
    assert senders[3] == "@bridge_bob:localhost"
    typing = [e for e in result["ephemeral"] if e["type"] == "m.typing"]
    assert typing[0]["room_id"] == room_id
    assert "@alice:localhost" in typing[0]["content"]["user_ids"]
    receipts = [e for e in result["ephemeral"] if e["type"] == "m.receipt"]
    assert "@alice:localhost" in receipts[0]["content"][result["last_read"]]["m.read"]
