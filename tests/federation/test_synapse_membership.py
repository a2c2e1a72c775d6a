"""Membership across servers with a real Synapse: our users join Synapse's rooms
(by id and by alias), invites both ways, a leave and a ban seen on both sides."""

from __future__ import annotations

from typing import Any

from tests.interop.fixtures import start_federating_server
from tests.interop.matrix_client import MatrixClient, quote, register
from tests.interop.synapse import SynapseServer
from tests.interop.waiting import wait_until


async def ours(hs: Any, synapse: SynapseServer, prefix: str) -> MatrixClient:
    return await register(hs.http, hs.url, synapse.unique_localpart(prefix), "secret")


async def members(client: MatrixClient, room_id: str) -> set[str]:
    body = await client.ok("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
    return set(body["joined"])


async def membership_of(client: MatrixClient, room_id: str, user_id: str) -> str | None:
    status, body = await client.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}",
    )
    return body.get("membership") if status == 200 else None


async def test_our_users_join_a_synapse_room_by_id_and_by_alias(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    localpart = synapse.unique_localpart("lobby")
    room_id = await syd.create_room(preset="public_chat", name="Lobby", room_alias_name=localpart)
    await syd.send_text(room_id, "hello from Synapse")
    bob = await ours(hs, synapse, "bob")
    carol = await ours(hs, synapse, "carol")

    assert await bob.join(room_id, via=[synapse.server_name]) == room_id
    alias = f"#{localpart}:{synapse.server_name}"
    assert await carol.join(alias) == room_id

    # Our side has the room's state; Synapse counts our users in.
    name = await bob.ok("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.name/")
    assert name == {"name": "Lobby"}
    everyone = {syd.user_id, bob.user_id, carol.user_id}
    assert await members(bob, room_id) == everyone
    await wait_until(
        lambda: _same(members(syd, room_id), everyone), "Synapse to see both our users joined"
    )
    joined = (await bob.sync())["rooms"]["join"][room_id]
    state_types = {e["type"] for e in joined["state"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.power_levels"} <= state_types


async def _same(found: Any, expected: set[str]) -> bool:
    return await found == expected


async def test_a_synapse_user_invites_ours_who_accepts(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    bob = await ours(hs, synapse, "bob")
    room_id = await syd.create_room(preset="private_chat", name="Private")
    await syd.invite(room_id, bob.user_id)

    invite = await bob.sync_until_invite(room_id)
    stripped = {e["type"]: e for e in invite["invite_state"]["events"]}
    assert stripped["m.room.name"]["content"] == {"name": "Private"}
    assert stripped["m.room.member"]["sender"] == syd.user_id

    assert await bob.join(room_id) == room_id
    assert await members(bob, room_id) == {syd.user_id, bob.user_id}
    await wait_until(
        lambda: _same(members(syd, room_id), {syd.user_id, bob.user_id}),
        "Synapse to see our user accept",
    )


async def test_our_user_invites_a_synapse_user_who_accepts(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    our_name = hs.server.config.server_name
    alice = await ours(hs, synapse, "alice")
    syd = await synapse.register()
    room_id = await alice.create_room(preset="private_chat", name="Ours")
    await alice.invite(room_id, syd.user_id)
    assert await membership_of(alice, room_id, syd.user_id) == "invite"

    invite = await syd.sync_until_invite(room_id)
    names = [e for e in invite["invite_state"]["events"] if e["type"] == "m.room.name"]
    assert names[0]["content"] == {"name": "Ours"}
    assert await syd.join(room_id, via=[our_name]) == room_id
    assert await members(alice, room_id) == {alice.user_id, syd.user_id}


async def test_a_leave_and_a_ban_are_seen_on_both_sides(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    room_id = await syd.create_room(preset="public_chat", name="Moderated")
    bob = await ours(hs, synapse, "bob")
    carol = await ours(hs, synapse, "carol")
    for user in (bob, carol):
        assert await user.join(room_id, via=[synapse.server_name]) == room_id
    await wait_until(
        lambda: _same(members(syd, room_id), {syd.user_id, bob.user_id, carol.user_id}),
        "Synapse to see our users joined",
    )

    # Our user leaves: a local leave event, delivered to Synapse.
    await bob.leave(room_id)
    assert await membership_of(carol, room_id, bob.user_id) == "leave"
    await wait_until(
        lambda: _equal(membership_of(syd, room_id, bob.user_id), "leave"),
        "Synapse to see our user leave",
    )

    # Synapse's user bans ours: the ban reaches us over /send.
    await syd.ok(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/ban",
        {"user_id": carol.user_id, "reason": "testing"},
    )
    left = await carol.sync_until(
        lambda r: r.get("rooms", {}).get("leave", {}).get(room_id), what="the ban in carol's sync"
    )
    ban = left["timeline"]["events"][-1]
    assert (ban["type"], ban["state_key"], ban["sender"]) == (
        "m.room.member",
        carol.user_id,
        syd.user_id,
    )
    assert ban["content"]["membership"] == "ban"


async def _equal(found: Any, expected: str) -> bool:
    return await found == expected


async def test_our_user_joins_a_synapse_room_of_version_12(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    room_id = await syd.create_room(preset="public_chat", name="Twelve", room_version="12")
    bob = await ours(hs, synapse, "bob")

    assert await bob.join(room_id, via=[synapse.server_name]) == room_id
    create = await bob.ok("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/m.room.create/")
    assert create["room_version"] == "12"
    await wait_until(
        lambda: _same(members(syd, room_id), {syd.user_id, bob.user_id}),
        "Synapse to see our user joined",
    )


async def test_our_user_rejects_a_synapse_invite(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    bob = await ours(hs, synapse, "bob")
    room_id = await syd.create_room(preset="private_chat")
    await syd.invite(room_id, bob.user_id)
    await bob.sync_until_invite(room_id)

    await bob.leave(room_id)
    await wait_until(
        lambda: _equal(membership_of(syd, room_id, bob.user_id), "leave"),
        "Synapse to see the invite rejected",
    )
    rooms = (await bob.sync()).get("rooms", {})
    assert room_id not in rooms.get("invite", {})
    assert room_id in rooms.get("leave", {})


async def test_our_user_knocks_on_a_synapse_room_and_is_let_in(
    synapse: SynapseServer, server_factory: Any
) -> None:
    hs = await start_federating_server(server_factory)
    syd = await synapse.register()
    room_id = await syd.create_room(
        preset="private_chat",
        name="Knock knock",
        room_version="10",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
        ],
    )
    bob = await ours(hs, synapse, "bob")

    await bob.ok(
        "POST",
        f"/_matrix/client/v3/knock/{quote(room_id)}?via={synapse.server_name}",
        {"reason": "hello?"},
    )
    knock = await bob.sync_until(
        lambda r: r.get("rooms", {}).get("knock", {}).get(room_id), what="the knock in sync"
    )
    names = [e["content"] for e in knock["knock_state"]["events"] if e["type"] == "m.room.name"]
    assert names == [{"name": "Knock knock"}]
    assert await membership_of(syd, room_id, bob.user_id) == "knock"

    # Synapse's user lets ours in with an invite; ours accepts it.
    await syd.invite(room_id, bob.user_id)
    await bob.sync_until_invite(room_id)
    assert await bob.join(room_id) == room_id
    await wait_until(
        lambda: _same(members(syd, room_id), {syd.user_id, bob.user_id}),
        "Synapse to see the knocker joined",
    )
