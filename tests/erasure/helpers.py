"""The erasure tests' room: alice (who will be erased) speaks and sets the
topic while bob is in the room; carol joins afterwards."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import attrs

from tests.admin.conftest import make_admin
from tests.conftest import RunningServer
from tests.sliding_sync.helpers import User, new_user

V3 = "/_matrix/client/v3"
SECRET = "the merger closes on friday"
TOPIC = "alice's private topic"


@attrs.frozen
class Scene:
    hs: RunningServer
    alice: User
    bob: User
    carol: User
    room: str
    message: str
    topic: str


async def scene(hs: RunningServer) -> Scene:
    alice, bob, carol = [await new_user(hs, n) for n in ("alice", "bob", "carol")]
    await alice.call(
        "PUT", f"{V3}/profile/{quote(alice.user_id)}/displayname", {"displayname": "alice"}
    )
    room = await alice.create_room(preset="public_chat")
    await bob.join(room)
    topic = await alice.state(room, "m.room.topic", {"topic": TOPIC})
    message = await alice.send(room, SECRET)
    await carol.join(room)
    await carol.send(room, "hello all")
    return Scene(hs, alice, bob, carol, room, message, topic)


async def erase_by_client(user: User, password: str = "secret") -> None:
    """POST /account/deactivate with erase, through the password UIA stage."""
    status, challenge = await user.hs.request(
        "POST", f"{V3}/account/deactivate", token=user.token, json={"erase": True}
    )
    assert status == 401, challenge
    localpart = user.user_id[1:].split(":")[0]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": password,
        "session": challenge["session"],
    }
    await user.call("POST", f"{V3}/account/deactivate", {"erase": True, "auth": auth})


async def erase_by_admin(hs: RunningServer, user_id: str) -> None:
    admin = await make_admin(hs, "eraser")
    status, body = await admin.call("POST", f"/v1/deactivate/{quote(user_id)}", {"erase": True})
    assert status == 200, body


async def event(user: User, room: str, event_id: str) -> dict[str, Any]:
    return dict(await user.call("GET", f"{V3}/rooms/{room}/event/{event_id}"))


async def messages(user: User, room: str) -> dict[str, dict[str, Any]]:
    """{event id: content} of the room's last 50 events, from /messages."""
    page = await user.call("GET", f"{V3}/rooms/{room}/messages?dir=b&limit=50")
    return {e["event_id"]: e["content"] for e in page["chunk"]}


async def state(user: User, room: str) -> dict[tuple[str, str], dict[str, Any]]:
    events = await user.call("GET", f"{V3}/rooms/{room}/state")
    return {(e["type"], e["state_key"]): e["content"] for e in events}
