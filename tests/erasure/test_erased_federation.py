"""Other servers walking a room's history (backfill, missing events) get an
erased sender's events redacted, as from Synapse, unless a hold covers them."""

from __future__ import annotations

from homeserver.events.hashing import compute_event_id
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from storage.legal_holds import LegalHoldStore
from tests.conftest import RunningServer
from tests.erasure.helpers import V3, erase_by_admin
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.sliding_sync.helpers import new_user


async def test_history_walks_of_other_servers_get_erased_events_redacted(
    fed_hs: RunningServer, remote: ScriptedRemote
) -> None:
    """As Synapse: backfill and missing events send an erased sender's
    events redacted (same event ids), unless a hold covers them."""
    alice = await new_user(fed_hs, "alice")
    room = await alice.create_room(
        preset="public_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    said = [await alice.send(room, f"secret {i}") for i in range(3)]
    create = await alice.call("GET", f"{V3}/rooms/{room}/state/m.room.create/")
    version = KNOWN_ROOM_VERSIONS[create["room_version"]]
    await erase_by_admin(fed_hs, alice.user_id)
    path = f"/_matrix/federation/v1/backfill/{path_quote(room)}?v={said[2]}&limit=3"

    async def backfilled() -> dict[str, dict]:
        status, body = await remote.request(fed_hs, "GET", path)
        assert status == 200, body
        return {compute_event_id(p, version): p["content"] for p in body["pdus"]}

    walked = await backfilled()
    assert [walked[e] for e in said] == [{}, {}, {}]
    status, body = await remote.request(
        fed_hs,
        "POST",
        f"/_matrix/federation/v1/get_missing_events/{path_quote(room)}",
        json_body={"earliest_events": [said[0]], "latest_events": [said[2]], "limit": 10},
    )
    assert status == 200, body
    assert [p["content"] for p in body["events"]] == [{}]

    await LegalHoldStore(fed_hs.pool).place("room", room, "", "@root:localhost")
    walked = await backfilled()
    assert [walked[e]["body"] for e in said] == ["secret 0", "secret 1", "secret 2"]
