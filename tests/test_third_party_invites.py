"""Inviting by email address through an identity server, and accepting the
invite once the address is bound."""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key

from tests.fake_identity_server import (
    ACCESS_TOKEN,
    CaFiles,
    FakeIdentityServer,
    post_onbind,
)

V3 = "/_matrix/client/v3"
EMAIL = "bob@example.org"


@pytest.fixture
async def hs(server_factory: Any, ca: CaFiles) -> Any:
    return await server_factory(outbound_tls_ca_file=str(ca.ca_file))


def threepid(idserver: FakeIdentityServer, address: str = EMAIL) -> dict[str, str]:
    return {
        "id_server": idserver.name,
        "id_access_token": ACCESS_TOKEN,
        "medium": "email",
        "address": address,
    }


async def make_room(hs: Any, token: str, **body: Any) -> str:
    status, room = await hs.request("POST", f"{V3}/createRoom", token=token, json=body)
    assert status == 200, room
    return room["room_id"]


async def member(hs: Any, token: str, room_id: str, user_id: str) -> tuple[int, Any]:
    return await hs.request(
        "GET", f"{V3}/rooms/{room_id}/state/m.room.member/{user_id}", token=token
    )


async def test_invite_of_a_bound_address_invites_its_user(hs, idserver):
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    idserver.bindings[("email", EMAIL)] = bob["user_id"]
    room_id = await make_room(hs, alice["access_token"], preset="private_chat")

    status, body = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/invite", token=alice["access_token"], json=threepid(idserver)
    )
    assert (status, body) == (200, {})
    status, content = await member(hs, alice["access_token"], room_id, bob["user_id"])
    assert (status, content["membership"]) == (200, "invite")
    assert idserver.invites == []


async def test_create_room_with_invite_3pid(hs, idserver):
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    idserver.bindings[("email", EMAIL)] = bob["user_id"]
    room_id = await make_room(hs, alice["access_token"], invite_3pid=[threepid(idserver)])
    status, content = await member(hs, alice["access_token"], room_id, bob["user_id"])
    assert (status, content["membership"]) == (200, "invite")


async def test_unbound_address_is_invited_and_accepts_after_binding(hs, idserver):
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    carol = await hs.register("carol")
    room_id = await make_room(
        hs, alice["access_token"], preset="private_chat", name="Garden", invite=[carol["user_id"]]
    )
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=carol["access_token"])
    assert status == 200

    status, _ = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/invite", token=alice["access_token"], json=threepid(idserver)
    )
    assert status == 200
    [stored] = idserver.invites
    assert (stored["room_id"], stored["sender"], stored["room_name"]) == (
        room_id,
        alice["user_id"],
        "Garden",
    )
    status, tpi = await hs.request(
        "GET",
        f"{V3}/rooms/{room_id}/state/m.room.third_party_invite/{stored['token']}",
        token=alice["access_token"],
    )
    assert status == 200
    assert tpi["public_key"] == idserver.public_key
    assert tpi["display_name"] == "b...@example.org"

    # Bob cannot join before the address is bound to him.
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    assert status == 403

    # Alice leaves: her invite stays good.
    await hs.request("POST", f"{V3}/rooms/{room_id}/leave", token=alice["access_token"])
    idserver.bindings[("email", EMAIL)] = bob["user_id"]
    body = idserver.onbind_body("email", EMAIL, bob["user_id"], idserver.key)
    assert await post_onbind(hs.url, body, method="PUT") == 200

    status, content = await member(hs, carol["access_token"], room_id, bob["user_id"])
    assert (status, content["membership"]) == (200, "invite")
    assert content["third_party_invite"]["display_name"] == "b...@example.org"
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    assert status == 200
    status, content = await member(hs, carol["access_token"], room_id, bob["user_id"])
    assert content["membership"] == "join"


async def unbound_invite(hs: Any, idserver: FakeIdentityServer) -> tuple[dict, dict, str]:
    alice = await hs.register("alice")
    bob = await hs.register("bob")
    room_id = await make_room(hs, alice["access_token"], preset="private_chat")
    status, _ = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/invite", token=alice["access_token"], json=threepid(idserver)
    )
    assert status == 200
    return alice, bob, room_id


async def test_invite_signed_with_another_key_is_refused(hs, idserver):
    alice, bob, room_id = await unbound_invite(hs, idserver)
    forged = idserver.onbind_body("email", EMAIL, bob["user_id"], generate_signing_key("0"))
    assert await post_onbind(hs.url, forged) == 403
    status, _ = await member(hs, alice["access_token"], room_id, bob["user_id"])
    assert status == 404
    status, _ = await hs.request("POST", f"{V3}/join/{room_id}", token=bob["access_token"])
    assert status == 403


async def test_invite_signed_with_a_revoked_key_is_refused(hs, idserver):
    alice, bob, room_id = await unbound_invite(hs, idserver)
    body = idserver.onbind_body("email", EMAIL, bob["user_id"], idserver.key)
    idserver.valid_keys.clear()
    assert await post_onbind(hs.url, body) == 403
    status, _ = await member(hs, alice["access_token"], room_id, bob["user_id"])
    assert status == 404


async def test_invite_is_refused_when_the_identity_server_is_gone(hs, idserver):
    alice, bob, room_id = await unbound_invite(hs, idserver)
    body = idserver.onbind_body("email", EMAIL, bob["user_id"], idserver.key)
    await idserver.stop()
    assert await post_onbind(hs.url, body) == 403
    status, _ = await member(hs, alice["access_token"], room_id, bob["user_id"])
    assert status == 404


async def test_onbind_for_someone_else_than_the_signed_mxid_is_refused(hs, idserver):
    alice, bob, room_id = await unbound_invite(hs, idserver)
    body = idserver.onbind_body("email", EMAIL, bob["user_id"], idserver.key)
    body["invites"][0]["mxid"] = alice["user_id"].replace("alice", "mallory")
    assert await post_onbind(hs.url, body) == 403
    status, _ = await member(hs, alice["access_token"], room_id, "@mallory:localhost")
    assert status == 404


async def test_invite_needs_every_3pid_field(hs, idserver):
    alice = await hs.register("alice")
    room_id = await make_room(hs, alice["access_token"])
    body = threepid(idserver)
    del body["id_access_token"]
    status, err = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/invite", token=alice["access_token"], json=body
    )
    assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")
    body = {**threepid(idserver), "id_server": "https://evil.example/path"}
    status, err = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/invite", token=alice["access_token"], json=body
    )
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    assert idserver.received == []


async def test_only_members_invite_by_3pid(hs, idserver):
    alice = await hs.register("alice")
    carol = await hs.register("carol")
    room_id = await make_room(hs, alice["access_token"])
    status, err = await hs.request(
        "POST", f"{V3}/rooms/{room_id}/invite", token=carol["access_token"], json=threepid(idserver)
    )
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    assert idserver.invites == []
