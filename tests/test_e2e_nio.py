"""End-to-end encryption as matrix-nio (with vodozemac) does it: two users
with their own crypto stores exchange messages in an encrypted room and each
decrypts what the other sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.nio_e2e import MEGOLM, decrypted, encrypted_client, send, sync, upload_keys

Client = Callable[[str], Any]


# The number of one-time keys each client uploaded at start, by user id.
uploaded: dict[str, int] = {}


@pytest.fixture
async def e2e_client(hs: Any, tmp_path: Path) -> AsyncIterator[Client]:
    """e2e_client(name): a registered user's nio client with encryption on
    and its own crypto store, its device keys uploaded."""
    clients: list[nio.AsyncClient] = []

    async def make(name: str) -> nio.AsyncClient:
        body = await hs.register(name)
        client = encrypted_client(
            tmp_path / f"store-{name}",
            hs.url,
            body["user_id"],
            body["device_id"],
            body["access_token"],
        )
        clients.append(client)
        assert client.should_upload_keys
        upload = await upload_keys(client)
        assert upload.signed_curve25519_count > 0
        uploaded[client.user_id] = upload.signed_curve25519_count
        return client

    yield make
    for client in clients:
        await client.close()


async def test_two_users_exchange_encrypted_messages(e2e_client: Client, hs: Any) -> None:
    alice = await e2e_client("alice")
    bob = await e2e_client("bob")
    created = await alice.room_create(
        invite=[bob.user_id],
        initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
        ],
    )
    assert isinstance(created, nio.RoomCreateResponse), created
    room_id = created.room_id
    await sync(bob)
    assert isinstance(await bob.join(room_id), nio.JoinResponse)
    alice_sync = await sync(alice)
    assert alice_sync.device_key_count.signed_curve25519 == uploaded[alice.user_id]
    await sync(bob)
    assert alice.rooms[room_id].encrypted and bob.rooms[room_id].encrypted

    await send(alice, room_id, "hello bob, this is secret")
    # What the server stores is ciphertext only.
    raw = await hs.pool.fetch("SELECT json FROM events WHERE room_id = $1", room_id)
    assert not any("this is secret" in r["json"] for r in raw)
    assert any('"m.room.encrypted"' in r["json"] for r in raw)

    bob_sync = await sync(bob)
    assert decrypted(bob_sync, room_id) == [(alice.user_id, "hello bob, this is secret")]
    # Alice claimed one of bob's one-time keys to start an Olm session with him.
    assert bob_sync.device_key_count.signed_curve25519 == uploaded[bob.user_id] - 1

    await send(bob, room_id, "hi alice, secret reply")
    got = decrypted(await sync(alice), room_id)
    assert (bob.user_id, "hi alice, secret reply") in got
