"""Third-party invites across servers: the identity server calls the
invitee's server, which hands the invite to the inviter's server
(exchange_third_party_invite); that server checks and sends it."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from homeserver.events.event import parse_event
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.events.signing import sign_event
from tests.conftest import RunningServer
from tests.fake_identity_server import (
    ACCESS_TOKEN,
    CaFiles,
    FakeIdentityServer,
    post_onbind,
)
from tests.federation.conftest import ScriptedRemote, path_quote
from tests.federation.hosted_room import V2
from tests.federation.test_handshakes_join import started

CLIENT = "/_matrix/client/v3"
V1 = "/_matrix/federation/v1"
EMAIL = "carol@example.org"


@pytest.fixture
async def fed_hs(server_factory: Any, ca: CaFiles) -> RunningServer:
    return await server_factory(federation_insecure=True, outbound_tls_ca_file=str(ca.ca_file))


async def test_a_forwarded_invite_for_a_remote_invitee_is_sent_to_their_server(
    fed_hs: RunningServer, remote_factory: Any, idserver: FakeIdentityServer
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    carol = f"@carol:{remote.server_name}"
    invites: list[dict[str, Any]] = []

    async def invite(request: web.Request, _origin: str, body: Any) -> Any:
        invites.append(body)
        version = KNOWN_ROOM_VERSIONS[body["room_version"]]
        return {"event": sign_event(body["event"], remote.server_name, remote.signing_key, version)}

    remote.app.router.add_put(f"{V2}/invite/{{roomId}}/{{eventId}}", remote.handler(invite))
    await started(remote, fed_hs)
    alice = await fed_hs.register("alice")
    status, room = await fed_hs.request(
        "POST", f"{CLIENT}/createRoom", token=alice["access_token"], json={}
    )
    room_id = room["room_id"]
    status, _ = await fed_hs.request(
        "POST",
        f"{CLIENT}/rooms/{room_id}/invite",
        token=alice["access_token"],
        json={
            "id_server": idserver.name,
            "id_access_token": ACCESS_TOKEN,
            "medium": "email",
            "address": EMAIL,
        },
    )
    assert status == 200
    [invite_body] = idserver.onbind_body("email", EMAIL, carol, idserver.key)["invites"]
    event = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": alice["user_id"],
        "state_key": carol,
        "content": {
            "membership": "invite",
            "third_party_invite": {"signed": invite_body["signed"]},
        },
    }
    path = f"{V1}/exchange_third_party_invite/{path_quote(room_id)}"

    # Only carol's server may forward her invite.
    other = {**event, "state_key": "@dave:elsewhere.example"}
    status, body = await remote.request(fed_hs, "PUT", path, json_body=other)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    status, body = await remote.request(fed_hs, "PUT", path, json_body=event)
    assert (status, body) == (200, {})
    [sent] = invites
    pdu = parse_event(sent["event"], KNOWN_ROOM_VERSIONS[sent["room_version"]])
    assert (pdu.sender, pdu.state_key) == (alice["user_id"], carol)
    assert pdu.content["third_party_invite"]["display_name"] == "b...@example.org"
    status, member = await fed_hs.request(
        "GET", f"{CLIENT}/rooms/{room_id}/state/m.room.member/{carol}", token=alice["access_token"]
    )
    assert (status, member["membership"]) == (200, "invite")


async def test_an_invite_to_a_remote_room_is_forwarded_to_the_inviters_server(
    fed_hs: RunningServer, remote_factory: Any, idserver: FakeIdentityServer
) -> None:
    remote: ScriptedRemote = await remote_factory(start=False)
    forwarded: list[tuple[str, Any]] = []

    async def exchange(request: web.Request, origin: str, body: Any) -> Any:
        forwarded.append((request.match_info["roomId"], body))
        return {}

    remote.app.router.add_put(
        f"{V1}/exchange_third_party_invite/{{roomId}}", remote.handler(exchange)
    )
    await started(remote, fed_hs)
    bob = await fed_hs.register("bob")
    room_id = f"!room:{remote.server_name}"
    idserver.invites.append(
        {
            "medium": "email",
            "address": EMAIL,
            "room_id": room_id,
            "sender": f"@alice:{remote.server_name}",
            "token": "tok",
        }
    )
    body = idserver.onbind_body("email", EMAIL, bob["user_id"], idserver.key)
    assert await post_onbind(f"http://127.0.0.1:{fed_hs.server.client_port}", body) == 200
    [(forwarded_room, event)] = forwarded
    assert forwarded_room == room_id
    assert event["sender"] == f"@alice:{remote.server_name}"
    assert event["state_key"] == bob["user_id"]
    assert event["content"]["third_party_invite"]["signed"]["token"] == "tok"
