"""/sync as Element's SDK lives on it: two matrix-js-sdk clients (Node.js).

tests/interop/js/sync_flow.mjs registers two users, starts both sync loops
until PREPARED, has A create a room and invite B, B join from the invite its
sync delivered (a send of B's while only invited is refused first), A send a
message that B's live timeline receives, and B reply to A. It prints one JSON
object of what each client saw; this test checks it.
`make test` installs the npm packages (from package-lock.json) first.
"""

from __future__ import annotations

from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "sync_flow.mjs"


async def test_js_sdk_two_clients_sync_invite_join_and_message(hs):
    result = await run_node_script(SCRIPT, hs.url)
    a, b, room_id = result["a"], result["b"], result["room_id"]
    assert a.endswith(":localhost") and b.endswith(":localhost") and a != b
    assert room_id.startswith("!")

    # Both sync loops reached PREPARED, first, and never failed.
    for who in ("a", "b"):
        assert result["sync_states"][who][0] == "PREPARED", result["sync_states"]
        assert "ERROR" not in result["sync_states"][who], result["sync_errors"]

    # B's sync delivered the invite from A, with the room's name.
    assert result["invite"] == {
        "membership": "invite",
        "inviter": a,
        "room_name": "js-sdk sync room",
    }

    # While only invited, B may not send; the refused message reaches no timeline.
    assert result["send_while_invited"] == {"httpStatus": 403, "errcode": "M_FORBIDDEN"}

    # After joining, B's sync shows it joined, and A's sync shows B joined.
    assert result["b_membership"] == "join"
    assert result["b_room_name"] == "js-sdk sync room"
    assert result["b_memberships"][-1] == "join"
    assert "invite" in result["b_memberships"]
    assert result["a_sees_b"] == "join"
    assert result["a_joined_members"] == sorted([a, b])

    # A's message reached B's timeline through B's sync, and B's reply reached A's.
    assert result["message_at_b"] == {
        "room_id": room_id,
        "event_id": result["message_event_id"],
        "type": "m.room.message",
        "sender": a,
        "body": "Hello from A, through /sync ✓",
        "local_echo": False,
    }
    assert result["reply_at_a"] == {
        "room_id": room_id,
        "event_id": result["reply_event_id"],
        "type": "m.room.message",
        "sender": b,
        "body": "Hello back from B",
        "local_echo": False,
    }

    # Both live timelines hold the conversation in order, once each (and
    # nothing of B's refused send).
    conversation = [
        {
            "event_id": result["message_event_id"],
            "sender": a,
            "body": "Hello from A, through /sync ✓",
        },
        {"event_id": result["reply_event_id"], "sender": b, "body": "Hello back from B"},
    ]
    assert result["timeline_a"] == conversation
    assert result["timeline_b"] == conversation
