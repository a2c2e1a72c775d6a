"""Backfill from a real Synapse: our user joins a Synapse room with history,
and /messages on our server pages back into the messages sent before the
join, which only Synapse had."""

from __future__ import annotations

from typing import Any

from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixClient, quote, register
from tests.interop.synapse import SynapseServer

MESSAGES = 20


async def paginate(client: MatrixClient, room_id: str, limit: int) -> list[dict[str, Any]]:
    """Every event of /messages backwards from the end, newest first."""
    events: list[dict[str, Any]] = []
    since = ""
    for _ in range(50):
        body = await client.ok(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit={limit}{since}"
        )
        events.extend(body["chunk"])
        if "end" not in body:
            return events
        since = f"&from={quote(body['end'])}"
    raise AssertionError("pagination never ended")


async def test_messages_on_our_server_shows_a_synapse_rooms_history(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    room_id = await syd.create_room(preset="public_chat", name="Old news")
    sent = [await syd.send_text(room_id, f"story {n}") for n in range(MESSAGES)]
    bob = await register(hs.http, hs.url, synapse.unique_localpart("bob"), "secret")

    assert await bob.join(room_id, via=[synapse.server_name]) == room_id
    ours = await paginate(bob, room_id, limit=8)

    messages = [e for e in reversed(ours) if e["type"] == "m.room.message"]
    assert [m["event_id"] for m in messages] == sent
    assert [m["content"]["body"] for m in messages] == [f"story {n}" for n in range(MESSAGES)]
    assert {m["sender"] for m in messages} == {syd.user_id}
    # The whole room in Synapse's order, down to its create event.
    theirs = await paginate(syd, room_id, limit=100)
    assert [e["event_id"] for e in ours] == [e["event_id"] for e in theirs][-len(ours) :]
    assert ours[-1]["type"] == "m.room.create"
    assert ours[0]["sender"] == bob.user_id
