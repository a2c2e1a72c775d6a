"""Device dehydration (MSC3814) with Element's SDK: matrix-js-sdk's Rust
crypto creates a dehydrated device here, another user's client encrypts to
it, and the owner's next device rehydrates it and decrypts what was sent
while it did not exist yet.

tests/interop/js/dehydration_flow.mjs does the work and prints what the
clients saw. `make test` installs the npm packages first.
"""

from __future__ import annotations

from typing import Any

from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "dehydration_flow.mjs"


async def test_js_sdk_dehydrates_and_rehydrates_a_device(hs: Any) -> None:
    result = await run_node_script(SCRIPT, hs.url)
    assert result["supported"] is True
    first, second = result["first_dehydrated"], result["second_dehydrated"]
    # B's crypto knew the dehydrated device, and so encrypted to it.
    assert first in result["a_devices_at_b"]
    # The new device read the dehydrated device's messages and decrypted B's
    # message, sent before it existed.
    assert result["message_at_new_device"]["body"] == "Sent while A had no client running"
    assert result["message_at_new_device"]["wire_type"] == "m.room.encrypted"
    assert result["rehydration_progress"] and result["rehydration_progress"][-1][0] >= 1
    # A fresh dehydrated device replaced the one that was used.
    assert second != first
    rows = await hs.pool.fetch("SELECT device_id FROM dehydrated_devices")
    assert [r["device_id"] for r in rows] == [second]
