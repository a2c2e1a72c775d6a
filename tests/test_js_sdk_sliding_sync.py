"""Simplified sliding sync with Element's SDK: matrix-js-sdk clients started
with its SlidingSync class (the one Element Web's sliding-sync mode uses,
speaking the unstable simplified MSC4186 endpoint) and never /sync.

tests/interop/js/sliding_sync_flow.mjs does the work: a list ordered by
activity and a message bumping its room into it, then an encrypted
conversation between two Rust-crypto clients whose keys travel only over the
to_device and e2ee extensions.
"""

from __future__ import annotations

from typing import Any

from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "sliding_sync_flow.mjs"
SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


async def test_js_sdk_sliding_sync_lists_and_encryption(hs: Any) -> None:
    result = await run_node_script(SCRIPT, hs.url)

    # A list of range [0, 1] over three rooms: the two most active, newest first.
    r1, r2, r3 = result["activity_rooms"]
    assert result["first_seen"] == [r3, r2]
    assert result["list_count"] == 3
    # A message into R1 brings it into the list, on top.
    assert result["after_bump"] == [r1, r3, r2]

    # The invite reached B through sliding sync, and the conversation decrypted.
    assert result["invite_seen"] is True
    assert result["message_at_b"] == {
        "sender": result["a"],
        "wire_type": "m.room.encrypted",
        "body": "Encrypted over sliding sync 🔒",
    }
    assert result["reply_at_a"] == {
        "sender": result["b"],
        "wire_type": "m.room.encrypted",
        "body": "Encrypted reply over sliding sync",
    }
    # Only sliding sync carried the keys: no client ever called /sync v2.
    paths = set(result["paths"])
    assert SLIDING in paths
    assert not any(p.endswith("/sync") and p != SLIDING for p in paths), sorted(paths)
