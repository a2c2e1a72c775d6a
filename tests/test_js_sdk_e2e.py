"""End-to-end encryption with Element's SDK: two matrix-js-sdk clients on
the Rust crypto stack (Node.js) exchange messages in an encrypted room and
each decrypts the other's; one of them sets up cross-signing, secret storage
and key backup first, as Element does after registration.

tests/interop/js/e2e_flow.mjs does the work and prints what each client saw.
`make test` installs the npm packages (from package-lock.json) first.
"""

from __future__ import annotations

from typing import Any

from tests.interop.node_script import JS_DIR, run_node_script

SCRIPT = JS_DIR / "e2e_flow.mjs"


async def test_js_sdk_rust_crypto_clients_exchange_encrypted_messages(hs: Any) -> None:
    result = await run_node_script(SCRIPT, hs.url)
    a, b, room_id = result["a"], result["b"], result["room_id"]
    assert result["encrypted"] == {"a": True, "b": True}
    # Cross-signing: A's device signed by its self-signing key, as A and B see it.
    assert result["cross_signing_ready"] is True
    assert result["a_device_signed_by_owner"] is True
    assert result["a_has_cross_signing_at_b"] is True
    assert result["a_device_signed_by_owner_at_b"] is True
    # Key backup: A's outbound megolm session was backed up to the active version.
    assert result["backup_version"] == "1"
    assert result["backed_up_session"] == [
        "first_message_index",
        "forwarded_count",
        "is_verified",
        "session_data",
    ]
    assert all(result["keys_uploaded"].values())
    # A's crypto found B's device through /keys/query.
    assert result["b_devices_at_a"] == [result["b_device_id"]]

    assert result["message_at_b"]["sender"] == a
    assert result["message_at_b"]["wire_type"] == "m.room.encrypted"
    assert result["message_at_b"]["body"] == "Encrypted hello from A 🔒"
    assert result["reply_at_a"]["sender"] == b
    assert result["reply_at_a"]["wire_type"] == "m.room.encrypted"
    assert result["reply_at_a"]["body"] == "Encrypted reply from B"

    # The server holds ciphertext only.
    rows = await hs.pool.fetch("SELECT json FROM events WHERE room_id = $1", room_id)
    assert not any("Encrypted hello" in r["json"] or "Encrypted reply" in r["json"] for r in rows)
