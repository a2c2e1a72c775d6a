"""matrix-nio clients with encryption on, for the end-to-end encryption tests
against our server alone (tests/test_e2e_nio.py) and across federation with
Synapse (tests/federation/test_synapse_e2e.py): each client has its own
crypto store, and syncing also fetches the device keys it learnt it needs."""

from __future__ import annotations

from pathlib import Path

import nio

MEGOLM = "m.megolm.v1.aes-sha2"


def encrypted_client(
    store: Path, base_url: str, user_id: str, device_id: str, token: str
) -> nio.AsyncClient:
    """A logged-in client with encryption on and its crypto store in `store`
    (made here: a fresh directory per client)."""
    store.mkdir()
    client = nio.AsyncClient(
        base_url,
        user_id,
        store_path=str(store),
        config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )
    client.restore_login(user_id, device_id, token)
    return client


async def upload_keys(client: nio.AsyncClient) -> nio.KeysUploadResponse:
    upload = await client.keys_upload()
    assert isinstance(upload, nio.KeysUploadResponse), upload
    return upload


async def sync(client: nio.AsyncClient) -> nio.SyncResponse:
    resp = await client.sync(timeout=0, full_state=client.next_batch is None)
    assert isinstance(resp, nio.SyncResponse), resp
    if client.should_query_keys:
        assert isinstance(await client.keys_query(), nio.KeysQueryResponse)
    return resp


def decrypted(resp: nio.SyncResponse, room_id: str) -> list[tuple[str, str]]:
    """(sender, body) of the decrypted text messages of the room in a response."""
    room = resp.rooms.join.get(room_id)
    if room is None:
        return []
    return [
        (e.sender, e.body)
        for e in room.timeline.events
        if isinstance(e, nio.RoomMessageText) and e.decrypted
    ]


async def send(client: nio.AsyncClient, room_id: str, body: str) -> None:
    resp = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(resp, nio.RoomSendResponse), resp
