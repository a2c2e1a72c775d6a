"""PUT /send/{txnId}: PDUs from a scripted remote reach our users, bad ones are
refused or rejected one by one, transactions are answered once, and missing
prev events are fetched (/get_missing_events, or /state_ids across a gap)."""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key

from homeserver.events.hashing import compute_event_id
from homeserver.events.signing import sign_event
from tests.conftest import RunningServer
from tests.federation.conftest import ScriptedRemote
from tests.federation.remote_room import V1, RemoteRoom, serve_dag


async def sync_room(hs: RunningServer, token: str, room_id: str) -> dict[str, Any]:
    """The room's entry in a fresh initial /sync of the user."""
    status, body = await hs.request(
        "GET",
        '/_matrix/client/v3/sync?filter={"room":{"timeline":{"limit":50}}}',
        token=token,
    )
    assert status == 200, body
    return body["rooms"]["join"][room_id]


async def timeline(hs: RunningServer, token: str, room_id: str) -> list[dict[str, Any]]:
    return (await sync_room(hs, token, room_id))["timeline"]["events"]


async def local_room(hs: RunningServer, *, version: str = "10") -> tuple[str, str]:
    """Alice's public room: (access token, room id)."""
    token = (await hs.register("alice"))["access_token"]
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/createRoom",
        token=token,
        json={"preset": "public_chat", "room_version": version},
    )
    assert status == 200, body
    return token, body["room_id"]


async def room_with_remote(hs: RunningServer, remote_factory: Any) -> tuple[str, RemoteRoom]:
    """Alice's room (her token too) and a remote, serving its DAG, whose bob joined it."""
    remote: ScriptedRemote = await remote_factory(start=False)
    holder: dict[str, RemoteRoom] = {}
    serve_dag(remote, holder)
    await remote.start()
    await remote.expect_keys_of(hs)
    token, room_id = await local_room(hs)
    holder["room"] = room = await RemoteRoom.join(hs, remote, room_id)
    return token, room


@pytest.fixture
async def setup(
    fed_hs: RunningServer, remote_factory: Any
) -> tuple[RunningServer, str, RemoteRoom]:
    """Our server, alice's room, and a remote whose bob joined it."""
    token, room = await room_with_remote(fed_hs, remote_factory)
    return fed_hs, token, room


def bodies(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [
        (e["sender"], e["content"].get("body")) for e in events if e["type"] == "m.room.message"
    ]


async def test_pdus_of_a_transaction_reach_the_local_users_sync(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    first, second = room.message("hello alice"), room.message("how are you?")
    status, body = await room.send([first, second])
    assert status == 200, body
    assert body == {"pdus": {first.event_id: {}, second.event_id: {}}}
    events = await timeline(hs, token, room.room_id)
    assert bodies(events)[-2:] == [(bob, "hello alice"), (bob, "how are you?")]
    assert [e["event_id"] for e in events[-2:]] == [first.event_id, second.event_id]


async def test_bad_pdus_are_refused_or_rejected_without_losing_the_good_ones(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    good = room.message("good 1")
    # Signed with a key that is not the remote's.
    impostor = generate_signing_key("x")
    forged_event = room.message("forged", add=False)
    forged = sign_event(
        {k: v for k, v in forged_event.pdu.items() if k != "signatures"},
        room.remote.server_name,
        impostor,
        room.version,
    )
    # The content changed after signing: the hash no longer matches, so the
    # event is kept in its redacted form (same event id, no body).
    honest = room.message("secret words", add=False, prev=[good.event_id])
    tampered = {**honest.pdu, "content": {"msgtype": "m.text", "body": "tampered words"}}
    # Carol of the remote never joined: rejected by the auth rules.
    stranger = room.message("let me in", sender="carol", add=False, prev=[good.event_id])
    # auth_events naming the join rules, which a message may not cite.
    wrong_auth = room.build(
        "m.room.message",
        {"msgtype": "m.text", "body": "wrong auth"},
        add=False,
        prev=[good.event_id],
    )
    join_rules = room.state[("m.room.join_rules", "")]
    wrong_auth_pdu = sign_event(
        {
            **{k: v for k, v in wrong_auth.pdu.items() if k not in ("signatures", "hashes")},
            "auth_events": [*wrong_auth.pdu["auth_events"], join_rules.event_id],
        },
        room.remote.server_name,
        room.remote.signing_key,
        room.version,
    )
    last = room.message("good 2", prev=[good.event_id])
    status, body = await room.send([good, forged, tampered, stranger, wrong_auth_pdu, last])
    assert status == 200, body
    results = body["pdus"]
    wrong_auth_id = compute_event_id(wrong_auth_pdu, room.version)
    assert results[good.event_id] == {} and results[last.event_id] == {}
    assert results[honest.event_id] == {}
    assert "signature" in results[forged_event.event_id]["error"]
    assert results[stranger.event_id]["error"].startswith("rejected:")
    assert results[wrong_auth_id]["error"].startswith("rejected:")

    events = await timeline(hs, token, room.room_id)
    by_id = {e["event_id"]: e for e in events}
    assert (bob, "good 1") in bodies(events) and (bob, "good 2") in bodies(events)
    # The redacted copy arrived, without its content.
    assert by_id[honest.event_id]["content"] == {}
    for refused in (forged_event.event_id, stranger.event_id, wrong_auth_id):
        assert refused not in by_id
    seen = {b for _, b in bodies(events)}
    assert not seen & {"forged", "tampered words", "secret words", "let me in", "wrong auth"}
    # A rejected event is not served to other servers either.
    status, _ = await room.remote.request(hs, "GET", f"{V1}/event/{stranger.event_id}")
    assert status == 404


async def test_a_repeated_transaction_gets_the_same_answer_and_is_not_processed_again(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    first = room.message("once")
    status, body = await room.send([first], txn_id="t1")
    assert (status, body) == (200, {"pdus": {first.event_id: {}}})
    # A retry of t1 that (wrongly) carries another PDU: the stored answer
    # comes back and the new PDU is never looked at.
    other = room.message("never")
    status, again = await room.send([other], txn_id="t1")
    assert (status, again) == (200, {"pdus": {first.event_id: {}}})
    sent = bodies(await timeline(hs, token, room.room_id))
    assert sent.count((room.user("bob"), "once")) == 1
    assert (room.user("bob"), "never") not in sent


async def test_a_transaction_from_another_origin_or_too_big_is_refused(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, _, room = setup
    body = {"origin": "elsewhere.example", "origin_server_ts": 0, "pdus": [], "edus": []}
    status, answer = await room.remote.request(hs, "PUT", f"{V1}/send/x1", json_body=body)
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")
    status, answer = await room.send([{}] * 51)
    assert (status, answer["errcode"]) == (400, "M_BAD_JSON")


async def test_pdus_for_rooms_we_are_not_in_are_refused(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    """A room we never heard of has no room version to read the PDU with: it
    is dropped without an answer. A room all our users left gets an error."""
    hs, token, room = setup
    status, created = await hs.request(
        "POST", "/_matrix/client/v3/createRoom", token=token, json={"preset": "public_chat"}
    )
    assert status == 200
    left = created["room_id"]
    status, _ = await hs.request("POST", f"/_matrix/client/v3/rooms/{left}/leave", token=token)
    assert status == 200
    unknown = {**room.message("unknown", add=False).pdu, "room_id": "!other:localhost"}
    gone = {**room.message("gone", add=False).pdu, "room_id": left}
    good = room.message("here")
    status, body = await room.send([unknown, gone, good])
    assert status == 200
    assert body["pdus"] == {
        compute_event_id(gone, room.version): {"error": "this server is not in the room"},
        good.event_id: {},
    }


async def test_missing_prev_events_are_fetched_with_get_missing_events_and_applied_in_order(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    extremity = room.heads[0]
    one, two, three = room.message("one"), room.message("two"), room.message("three")
    status, body = await room.send([three])
    assert (status, body) == (200, {"pdus": {three.event_id: {}}})
    [(_, _, _, asked)] = [r for r in room.remote.received if "/get_missing_events/" in r[1]]
    assert asked["earliest_events"] == [extremity]
    assert asked["latest_events"] == [three.event_id]
    assert asked["limit"] == 10
    events = await timeline(hs, token, room.room_id)
    assert [e["event_id"] for e in events[-3:]] == [one.event_id, two.event_id, three.event_id]


async def test_across_a_large_gap_the_state_comes_from_state_ids(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    bob = room.user("bob")
    room.missing_events_limit = 0
    room.message("lost 1")
    renamed = room.build(
        "m.room.member", {"membership": "join", "displayname": "Bobby"}, state_key=bob
    )
    room.message("lost 2")
    prev = room.message("lost 3")
    last = room.message("after the gap")
    status, body = await room.send([last])
    assert (status, body) == (200, {"pdus": {last.event_id: {}}})
    paths = [r[1] for r in room.remote.received]
    assert any(p.startswith(f"{V1}/state_ids/") for p in paths)
    assert f"{V1}/event/{prev.event_id}" in paths
    # Bob's new membership is an auth event of the last one: it came with
    # its auth chain, so it is not fetched again.
    assert any(p.startswith(f"{V1}/event_auth/") for p in paths)
    assert f"{V1}/event/{renamed.event_id}" not in paths

    events = await timeline(hs, token, room.room_id)
    assert bodies(events)[-1] == (bob, "after the gap")
    assert "lost 2" not in {b for _, b in bodies(events)}
    status, member = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room.room_id}/state/m.room.member/{bob}", token=token
    )
    assert (status, member.get("displayname")) == (200, "Bobby")


async def test_an_auth_event_first_stored_as_an_outlier_takes_its_place_in_the_timeline(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    """Bob's new membership is an auth event of his next message: it is fetched
    (/event_auth) and stored as an outlier before /get_missing_events brings
    it as a prev event, when it becomes a full event of the room."""
    hs, token, room = setup
    bob = room.user("bob")
    renamed = room.build(
        "m.room.member", {"membership": "join", "displayname": "Bob B."}, state_key=bob
    )
    last = room.message("new name")
    assert renamed.event_id in last.auth_event_ids
    status, body = await room.send([last])
    assert (status, body) == (200, {"pdus": {last.event_id: {}}})
    paths = [r[1] for r in room.remote.received]
    assert any(p.startswith(f"{V1}/event_auth/") for p in paths)
    events = await timeline(hs, token, room.room_id)
    assert [e["event_id"] for e in events[-2:]] == [renamed.event_id, last.event_id]
    assert events[-2]["content"]["displayname"] == "Bob B."
    status, state = await hs.request(
        "GET", f"/_matrix/client/v3/rooms/{room.room_id}/state", token=token
    )
    assert renamed.event_id in {e["event_id"] for e in state}


async def test_pdus_from_a_server_the_room_acl_denies_are_refused(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    hs, token, room = setup
    status, acl = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room.room_id}/state/m.room.server_acl/",
        token=token,
        json={"allow": ["*"], "deny": ["127.0.0.1"]},
    )
    assert status == 200, acl
    # The remote cannot even read the ACL event any more; it sends on.
    denied = room.message("denied")
    status, body = await room.send([denied])
    assert status == 200
    assert "server ACL" in body["pdus"][denied.event_id]["error"]
    assert "denied" not in {b for _, b in bodies(await timeline(hs, token, room.room_id))}


async def test_an_event_holding_nul_is_refused_alone(
    setup: tuple[RunningServer, str, RemoteRoom],
) -> None:
    """NUL is valid JSON and other servers may send it, but it cannot be
    stored: that event is refused, the rest of the transaction goes through."""
    hs, token, room = setup
    bob = room.user("bob")
    nul = room.message("before\u0000after", add=False)
    good = room.message("fine")
    typing = {
        "edu_type": "m.typing",
        "content": {"room_id": room.room_id, "user_id": bob, "typing": True, "x": "\u0000"},
    }
    status, body = await room.send([nul, good], edus=[typing])
    assert status == 200, body
    assert body["pdus"][good.event_id] == {}
    assert "NUL" in body["pdus"][nul.event_id]["error"]
    events = await timeline(hs, token, room.room_id)
    assert bodies(events)[-1] == (bob, "fine")
    assert nul.event_id not in [e["event_id"] for e in events]
