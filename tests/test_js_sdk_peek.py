"""The legacy endpoints as Element's SDK uses them (matrix-js-sdk, Node.js).

tests/interop/js/peek_flow.mjs has A make a world_readable room; B, who has
not joined, peeks into it with peekInRoom() (a room initialSync, then a
long-polling /events?room_id= loop) and receives A's next message live. A
makes the legacy /initialSync call and B reads /versions. It prints one JSON
object of what they saw; this test checks it.
`make test` installs the npm packages (from package-lock.json) first.
"""

from __future__ import annotations

from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "peek_flow.mjs"


async def test_js_sdk_peeks_into_a_world_readable_room(hs):
    result = await run_node_script(SCRIPT, hs.url)

    # The room initialSync gave the room's name and the history B may see.
    assert result["peek_name"] == "Peek room"
    assert result["peek_messages"] == ["before the peek"]
    # The /events poll delivered A's next message into the peeked room.
    assert result["live_sender"] == result["a"]
    assert result["messages_after"] == ["before the peek", "while peeking"]

    # The global initialSync lists A's room with its newest message.
    assert result["initial_rooms"] == [
        {"room_id": result["room_id"], "membership": "join", "messages": ["while peeking"]}
    ]
    assert "r0.6.1" in result["versions"]["versions"]
    assert result["versions"]["unstable_features"]["m.lazy_load_members"] is True
