"""Deactivation with `erase: true`: as in Synapse, users who were in the room
when an erased user's message was sent still see it; later joiners see it
redacted, on every read path (and the state of the room, but for the state
that configures it); a legal hold on the user or the room keeps it
visible to all."""

from __future__ import annotations

import json
from urllib.parse import quote

from homeserver.erasure.content import ErasedContent
from storage.erasure import ErasureStore
from storage.events import EventStore
from storage.legal_holds import LegalHoldStore
from storage.state import StateStore
from tests.conftest import RunningServer
from tests.erasure.helpers import (
    SECRET,
    TOPIC,
    V3,
    Scene,
    erase_by_admin,
    erase_by_client,
    event,
    messages,
    scene,
    state,
)
from tests.sliding_sync.helpers import User, new_user

TIMELINE = json.dumps({"room": {"timeline": {"limit": 50}}})


async def sync_timeline(user: User, room: str) -> dict[str, dict]:
    body = await user.call("GET", f"{V3}/sync?filter={quote(TIMELINE)}")
    return {e["event_id"]: e["content"] for e in body["rooms"]["join"][room]["timeline"]["events"]}


async def sliding_timeline(user: User, room: str) -> dict[str, dict]:
    body = await user.sync_ok(
        {"room_subscriptions": {room: {"timeline_limit": 50, "required_state": []}}}
    )
    return {e["event_id"]: e["content"] for e in body["rooms"][room]["timeline"]}


async def synced_topic(user: User, room: str) -> dict:
    """The topic in the state of an initial /sync (a timeline too short to hold it)."""
    short = json.dumps({"room": {"timeline": {"limit": 1}}})
    body = await user.call("GET", f"{V3}/sync?filter={quote(short)}")
    state = body["rooms"]["join"][room]["state"]["events"]
    [topic] = [e["content"] for e in state if e["type"] == "m.room.topic"]
    return dict(topic)


async def sliding_topic(user: User, room: str) -> dict:
    body = await user.sync_ok(
        {
            "room_subscriptions": {
                room: {"timeline_limit": 1, "required_state": [["m.room.topic", ""]]}
            }
        }
    )
    [topic] = [e["content"] for e in body["rooms"][room]["required_state"]]
    return dict(topic)


async def members(user: User, room: str) -> dict[str, dict]:
    chunk = (await user.call("GET", f"{V3}/rooms/{room}/members"))["chunk"]
    return {e["state_key"]: e["content"] for e in chunk}


async def joined(user: User, room: str) -> dict[str, dict]:
    return dict((await user.call("GET", f"{V3}/rooms/{room}/joined_members"))["joined"])


async def context(user: User, room: str, event_id: str) -> dict:
    return dict(await user.call("GET", f"{V3}/rooms/{room}/context/{event_id}?limit=10"))


async def search(user: User, term: str) -> list[str]:
    body = await user.call(
        "POST", f"{V3}/search", {"search_categories": {"room_events": {"search_term": term}}}
    )
    return [r["result"]["event_id"] for r in body["search_categories"]["room_events"]["results"]]


async def assert_whole_for(user: User, s: Scene) -> None:
    """Every read path shows alice's message and topic as sent."""
    said = {"msgtype": "m.text", "body": SECRET}
    assert (await event(user, s.room, s.message))["content"] == said
    assert (await messages(user, s.room))[s.message] == said
    assert (await sync_timeline(user, s.room))[s.message] == said
    assert (await sliding_timeline(user, s.room))[s.message] == said
    around = await context(user, s.room, s.message)
    assert around["event"]["content"] == said
    assert {"topic": TOPIC} in [e["content"] for e in around["state"]]
    assert await search(user, "merger") == [s.message]
    assert (await state(user, s.room))[("m.room.topic", "")] == {"topic": TOPIC}
    path = f"{V3}/rooms/{s.room}/state/m.room.topic/"
    assert await user.call("GET", path) == {"topic": TOPIC}
    assert await synced_topic(user, s.room) == {"topic": TOPIC}
    assert await sliding_topic(user, s.room) == {"topic": TOPIC}


async def assert_erased_for(user: User, s: Scene) -> None:
    """Every read path shows alice's message and topic redacted."""
    assert (await event(user, s.room, s.message))["content"] == {}
    assert (await messages(user, s.room))[s.message] == {}
    assert (await sync_timeline(user, s.room))[s.message] == {}
    assert (await sliding_timeline(user, s.room))[s.message] == {}
    around = await context(user, s.room, s.message)
    assert around["event"]["content"] == {}
    topics = [e for e in around["state"] if e["type"] == "m.room.topic"]
    assert [e["content"] for e in topics] == [{}]
    # The match was on words the searcher cannot see: no hit.
    assert await search(user, "merger") == []
    room_state = await state(user, s.room)
    assert room_state[("m.room.topic", "")] == {}
    # Alice's member event loses her profile; the room's configuration stays.
    assert room_state[("m.room.member", s.alice.user_id)] == {"membership": "join"}
    assert room_state[("m.room.create", "")]["room_version"]
    assert room_state[("m.room.join_rules", "")] == {"join_rule": "public"}
    assert await user.call("GET", f"{V3}/rooms/{s.room}/state/m.room.topic/") == {}
    assert await synced_topic(user, s.room) == {}
    assert await sliding_topic(user, s.room) == {}


async def test_erased_messages_are_redacted_for_later_joiners_only(hs: RunningServer) -> None:
    s = await scene(hs)
    await assert_whole_for(s.carol, s)
    assert (await members(s.carol, s.room))[s.alice.user_id]["displayname"] == "alice"
    await erase_by_client(s.alice)
    await assert_whole_for(s.bob, s)
    await assert_erased_for(s.carol, s)
    # Her name is gone from the room for everyone (deactivation clears the profile).
    for user in (s.bob, s.carol):
        assert (await members(user, s.room))[s.alice.user_id] == {"membership": "join"}
        assert (await joined(user, s.room))[s.alice.user_id]["display_name"] is None
    # Carol's own message is untouched.
    assert "hello all" in [c.get("body") for c in (await messages(s.carol, s.room)).values()]


async def test_admin_deactivation_with_erase(hs: RunningServer) -> None:
    s = await scene(hs)
    await erase_by_admin(hs, s.alice.user_id)
    said = {"msgtype": "m.text", "body": SECRET}
    assert (await event(s.bob, s.room, s.message))["content"] == said
    assert (await event(s.carol, s.room, s.message))["content"] == {}
    assert (await messages(s.carol, s.room))[s.message] == {}
    assert await search(s.carol, "merger") == []


async def test_a_legal_hold_keeps_erased_content_visible(hs: RunningServer) -> None:
    s = await scene(hs)
    holds = LegalHoldStore(hs.pool)
    await holds.place("user", s.alice.user_id, "case 7", "@root:localhost")
    await erase_by_client(s.alice)
    await assert_whole_for(s.carol, s)

    await holds.lift("user", s.alice.user_id)
    await holds.place("room", s.room, "case 8", "@root:localhost")
    await assert_whole_for(s.carol, s)

    # Once no hold applies, the erasure shows again.
    await holds.lift("room", s.room)
    await assert_erased_for(s.carol, s)


async def test_export_asks_whether_content_is_erased(hs: RunningServer) -> None:
    """The call an export makes: erased for a viewer who was not in the
    room (None) and for a later joiner, not for a member at the time."""
    s = await scene(hs)
    await erase_by_client(s.alice)
    state_store = StateStore(hs.pool)
    events = EventStore(hs.pool, state_store)
    erasure = ErasedContent(ErasureStore(hs.pool), state_store, events)
    loaded = await events.get_events([s.message, s.topic])
    batch = [loaded[s.message], loaded[s.topic]]
    assert await erasure.erased_ids(None, batch) == {s.message, s.topic}
    assert await erasure.erased_ids(s.carol.user_id, batch) == {s.message, s.topic}
    assert await erasure.erased_ids(s.bob.user_id, batch) == set()
    [seen, _] = await erasure.apply(None, batch)
    assert seen.event.content == {}

    await LegalHoldStore(hs.pool).place("room", s.room, "", "@root:localhost")
    assert await erasure.erased_ids(None, batch) == set()


async def test_bundled_edits_of_an_erased_user_are_redacted(hs: RunningServer) -> None:
    """An edit bundled with the message (m.replace) would otherwise carry
    the words the message lost."""
    s = await scene(hs)
    edit = {
        "msgtype": "m.text",
        "body": "* edited secret",
        "m.new_content": {"msgtype": "m.text", "body": "edited secret"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": s.message},
    }
    await s.alice.call("PUT", f"{V3}/rooms/{s.room}/send/m.room.message/edit1", edit)
    await erase_by_client(s.alice)
    dave = await new_user(hs, "dave")
    await dave.join(s.room)

    async def bundled_edit(user: User) -> dict:
        seen = await event(user, s.room, s.message)
        return dict(seen["unsigned"]["m.relations"]["m.replace"]["content"])

    # Carol was in the room for the edit, not for the message; Dave for neither.
    assert (await bundled_edit(s.bob))["m.new_content"]["body"] == "edited secret"
    assert (await bundled_edit(s.carol))["m.new_content"]["body"] == "edited secret"
    assert await bundled_edit(dave) == {}
