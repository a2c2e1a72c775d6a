"""Spaces, room summaries and jump to date across a real Synapse: we browse a
space that lives on Synapse and summarise its rooms through its federation
hierarchy; Synapse browses ours through ours; and in a Synapse room we
joined late, the history before our join is found by asking Synapse's
/timestamp_to_event."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.federation.test_synapse_federation import create_public_room, register_ours
from tests.interop.fixtures import start_federating_server
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until

CV1 = "/_matrix/client/v1"
CV3 = "/_matrix/client/v3"


def child_state(child: str, server: str) -> dict[str, Any]:
    return {"type": "m.space.child", "state_key": child, "content": {"via": [server]}}


async def test_we_browse_a_space_on_synapse_and_summarise_its_room(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syn_user = await synapse.register()
    room = await syn_user.create_room(preset="public_chat", name="Synapse room")
    space = await syn_user.create_room(
        preset="public_chat",
        name="Synapse space",
        creation_content={"type": "m.space"},
        initial_state=[child_state(room, synapse.server_name)],
    )
    token = await register_ours(hs, "alice")
    status, summary = await hs.request(
        "GET", f"{CV1}/room_summary/{quote(space)}?via={synapse.server_name}", token=token
    )
    assert status == 200, summary
    assert summary["name"] == "Synapse space" and summary["room_type"] == "m.space"
    assert summary["num_joined_members"] == 1 and summary["membership"] == "leave"
    assert summary["join_rule"] == "public"

    # Our space with Synapse's as its child: /hierarchy walks into it.
    space_id = await create_space_with_child(hs, token, space, synapse.server_name)
    status, body = await hs.request("GET", f"{CV1}/rooms/{space_id}/hierarchy", token=token)
    assert status == 200, body
    rooms = {r["room_id"]: r for r in body["rooms"]}
    assert list(rooms) == [space_id, space, room]
    assert rooms[space]["name"] == "Synapse space"
    assert [c["state_key"] for c in rooms[space]["children_state"]] == [room]
    assert rooms[room]["name"] == "Synapse room"


async def create_space_with_child(hs: Any, token: str, child: str, via: str) -> str:
    status, created = await hs.request(
        "POST",
        f"{CV3}/createRoom",
        token=token,
        json={
            "preset": "public_chat",
            "name": "Our space",
            "creation_content": {"type": "m.space"},
            "initial_state": [child_state(child, via)],
        },
    )
    assert status == 200, created
    return created["room_id"]


async def test_synapse_browses_our_space_through_our_federation_hierarchy(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    token = await register_ours(hs, "alice")
    room = await create_public_room(hs, token, "Our room")
    space = await create_space_with_child(hs, token, room, our_name)
    syn_user = await synapse.register()
    # Synapse's /hierarchy starts from a room it knows: its user joins our
    # space; the child, where Synapse has nobody, it must ask us about.
    assert await syn_user.join(space, via=[our_name]) == space

    async def listed() -> dict[str, Any] | None:
        body = await syn_user.ok("GET", f"{CV1}/rooms/{quote(space)}/hierarchy")
        rooms = {r["room_id"]: r for r in body["rooms"]}
        return rooms if room in rooms else None

    rooms = await wait_until(listed, "our room in Synapse's hierarchy")
    assert rooms[room]["name"] == "Our room"
    assert rooms[room]["num_joined_members"] == 1
    assert rooms[room]["join_rule"] == "public"


async def test_jump_to_date_before_our_join_asks_synapse(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syn_user = await synapse.register()
    room = await syn_user.create_room(preset="public_chat", name="Old history")
    sent = [await syn_user.send_text(room, f"early {n}") for n in range(3)]
    middle = await syn_user.ok("GET", f"{CV3}/rooms/{quote(room)}/event/{quote(sent[1])}")
    token = await register_ours(hs, "alice")
    status, body = await hs.request(
        "POST", f"{CV3}/join/{quote(room)}?server_name={synapse.server_name}", token=token, json={}
    )
    assert status == 200, body

    ts = middle["origin_server_ts"]
    status, found = await hs.request(
        "GET", f"{CV1}/rooms/{quote(room)}/timestamp_to_event?ts={ts}&dir=b", token=token
    )
    assert status == 200, found
    # Synapse's answer (the last event at or before the time), fetched here.
    assert found["origin_server_ts"] == ts
    status, context = await hs.request(
        "GET", f"{CV3}/rooms/{quote(room)}/context/{quote(found['event_id'])}?limit=0", token=token
    )
    assert status == 200, context
    assert context["event"]["origin_server_ts"] == ts


async def test_synapse_jumps_to_a_date_before_its_join_by_asking_us(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    token = await register_ours(hs, "alice")
    room = await create_public_room(hs, token, "Our old history")
    sent = []
    for n in range(3):
        status, body = await hs.request(
            "PUT",
            f"{CV3}/rooms/{room}/send/m.room.message/early{n}",
            token=token,
            json={"msgtype": "m.text", "body": f"early {n}"},
        )
        assert status == 200, body
        sent.append(body["event_id"])
    status, middle = await hs.request(
        "GET", f"{CV3}/rooms/{room}/event/{quote(sent[1])}", token=token
    )
    assert status == 200, middle
    syn_user = await synapse.register()
    assert await syn_user.join(room, via=[our_name]) == room

    ts = middle["origin_server_ts"]
    found = await syn_user.ok("GET", f"{CV1}/rooms/{quote(room)}/timestamp_to_event?ts={ts}&dir=b")
    # Synapse's own closest event is its join, next to the gap before it: it
    # asked us, and took our event.
    assert found["origin_server_ts"] == ts
    assert found["event_id"] in sent
