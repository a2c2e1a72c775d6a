"""The rooms part of /sync, driven by matrix-nio as a client would (with raw
HTTP where the exact JSON matters): timelines, gaps, state, summaries, lazy
loading, invites, leaves and history visibility."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import asyncpg
import nio
import pytest

from homeserver.sync.room_state import heroes
from homeserver.sync.rooms import RoomsSyncProvider
from storage.sync import MemberCounts

V3 = "/_matrix/client/v3"
_txn = itertools.count()


@pytest.fixture
async def login(hs: Any) -> AsyncIterator[Any]:
    """Registers a user and returns a logged-in nio client for them."""
    clients: list[nio.AsyncClient] = []

    async def make(name: str) -> nio.AsyncClient:
        await hs.register(name, "pw")
        client = nio.AsyncClient(hs.url, f"@{name}:localhost")
        clients.append(client)
        assert isinstance(await client.login("pw"), nio.LoginResponse)
        return client

    yield make
    for client in clients:
        await client.close()


async def sync(client: nio.AsyncClient, **kwargs: Any) -> nio.SyncResponse:
    """One sync from the client's last position (initial the first time)."""
    kwargs.setdefault("timeout", 0)
    resp = await client.sync(**kwargs)
    assert isinstance(resp, nio.SyncResponse), resp
    return resp


async def raw_sync(hs: Any, client: nio.AsyncClient, **params: Any) -> dict[str, Any]:
    """GET /sync as JSON; `filter` may be a dict."""
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
    status, body = await hs.request(
        "GET", f"{V3}/sync?{urlencode(params)}", token=client.access_token
    )
    assert status == 200, body
    return body


async def create(client: nio.AsyncClient, **kwargs: Any) -> str:
    resp = await client.room_create(**kwargs)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    return resp.room_id


async def say(client: nio.AsyncClient, room_id: str, text: str) -> str:
    resp = await client.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": text}, tx_id=f"t{next(_txn)}"
    )
    assert isinstance(resp, nio.RoomSendResponse), resp
    return resp.event_id


async def join(client: nio.AsyncClient, room_id: str) -> None:
    assert isinstance(await client.join(room_id), nio.JoinResponse)


def texts(events: list[Any]) -> list[str]:
    return [e.body for e in events if isinstance(e, nio.RoomMessageText)]


def raw_texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def members_in(events: list[Any]) -> set[str]:
    return {e.state_key for e in events if isinstance(e, nio.RoomMemberEvent)}


async def test_initial_then_incremental_sync_with_exactly_the_new_events(login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Lobby", preset=nio.RoomPreset.public_chat)
    other = await create(alice, name="Elsewhere", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await say(alice, room, "before")

    first = await sync(bob)
    assert set(first.rooms.join) == {room}
    timeline = first.rooms.join[room].timeline
    assert texts(timeline.events) == ["before"]
    assert timeline.events[0].sender == "@alice:localhost"
    # The whole short history fits: the room's state comes in the timeline.
    assert [e.source["type"] for e in timeline.events][:1] == ["m.room.create"]
    assert first.rooms.join[room].summary.joined_member_count == 2

    for text in ("one", "two", "three"):
        await say(alice, room, text)
    await say(alice, other, "not for bob")
    second = await sync(bob)
    assert set(second.rooms.join) == {room}
    assert texts(second.rooms.join[room].timeline.events) == ["one", "two", "three"]
    assert len(second.rooms.join[room].timeline.events) == 3
    assert second.rooms.join[room].timeline.limited is False
    assert second.rooms.join[room].state == []

    # Nothing new: no room at all; the sender sees their own transaction ids.
    assert (await sync(bob)).rooms.join == {}
    mine = (await sync(alice)).rooms.join[room].timeline.events
    assert mine[-1].source["unsigned"]["transaction_id"].startswith("t")
    assert "room_id" not in mine[-1].source


async def test_timeline_filters(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Filtered", preset=nio.RoomPreset.public_chat)
    quiet = await create(alice, name="Quiet", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await join(bob, quiet)
    for n in range(5):
        await say(alice, room, f"a{n}")
    await say(bob, room, "b0")

    limited = await raw_sync(hs, bob, filter={"room": {"timeline": {"limit": 2}}})
    timeline = limited["rooms"]["join"][room]["timeline"]
    assert raw_texts(timeline["events"]) == ["a4", "b0"]
    assert timeline["limited"] is True
    # What the timeline leaves out of the room's state comes in `state`.
    state_types = {e["type"] for e in limited["rooms"]["join"][room]["state"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types

    messages = await raw_sync(
        hs,
        bob,
        filter={"room": {"timeline": {"types": ["m.room.*"], "not_types": ["m.room.member"]}}},
    )
    events = messages["rooms"]["join"][room]["timeline"]["events"]
    assert "m.room.member" not in {e["type"] for e in events}
    assert raw_texts(events)[-6:] == ["a0", "a1", "a2", "a3", "a4", "b0"]

    by_alice = await raw_sync(
        hs,
        bob,
        filter={
            "room": {"timeline": {"senders": ["@alice:localhost"], "types": ["m.room.message"]}}
        },
    )
    assert raw_texts(by_alice["rooms"]["join"][room]["timeline"]["events"]) == [
        f"a{n}" for n in range(5)
    ]

    only_quiet = await raw_sync(hs, bob, filter={"room": {"rooms": [quiet]}})
    assert set(only_quiet["rooms"]["join"]) == {quiet}
    not_quiet = await raw_sync(hs, bob, filter={"room": {"not_rooms": [quiet]}})
    assert set(not_quiet["rooms"]["join"]) == {room}

    # A state filter narrows `state`, not the timeline.
    no_members = await raw_sync(
        hs,
        bob,
        filter={"room": {"timeline": {"limit": 1}, "state": {"not_types": ["m.room.member"]}}},
    )
    state = no_members["rooms"]["join"][room]["state"]["events"]
    assert state and "m.room.member" not in {e["type"] for e in state}

    # Bad filters are refused.
    status, body = await hs.request(
        "GET",
        f"{V3}/sync?" + urlencode({"filter": json.dumps({"room": {"timeline": {"limit": "x"}}})}),
        token=bob.access_token,
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_lazy_loading_leaves_out_a_silent_member_and_counts_them(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    room = await create(alice, name="Lazy", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await join(carol, room)
    await say(alice, room, "hello")
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}

    first = await sync(bob, sync_filter=lazy)
    joined = first.rooms.join[room]
    assert texts(joined.timeline.events) == ["hello"]
    # Alice spoke; bob is the user; carol was silent and is left out...
    assert members_in(joined.state) == {"@alice:localhost", "@bob:localhost"}
    # ...but still counted.
    assert joined.summary.joined_member_count == 3
    assert joined.summary.invited_member_count == 0

    # Without lazy loading every member comes.
    everyone = await raw_sync(hs, bob, filter={"room": {"timeline": {"limit": 1}}})
    state = everyone["rooms"]["join"][room]["state"]["events"]
    assert {e["state_key"] for e in state if e["type"] == "m.room.member"} == {
        "@alice:localhost",
        "@bob:localhost",
        "@carol:localhost",
    }

    # When carol speaks, her member event comes with it.
    await say(carol, room, "I'm here")
    second = await sync(bob, sync_filter=lazy)
    joined = second.rooms.join[room]
    assert texts(joined.timeline.events) == ["I'm here"]
    assert members_in(joined.state) == {"@carol:localhost"}


async def test_summary_heroes_for_unnamed_rooms(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    room = await create(alice, preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await join(carol, room)
    await say(alice, room, "hi")
    body = await raw_sync(
        hs, bob, filter={"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    )
    entry = body["rooms"]["join"][room]
    assert entry["summary"] == {
        "m.heroes": ["@alice:localhost", "@carol:localhost"],
        "m.joined_member_count": 3,
        "m.invited_member_count": 0,
    }
    # With lazy loading, the heroes' member events come so the client can name the room.
    assert {e["state_key"] for e in entry["state"]["events"] if e["type"] == "m.room.member"} == {
        "@alice:localhost",
        "@bob:localhost",
        "@carol:localhost",
    }
    # A plain message changes no counts: no summary; an invite does.
    await say(alice, room, "again")
    quiet = await raw_sync(hs, bob, since=body["next_batch"])
    assert quiet["rooms"]["join"][room]["summary"] == {}
    await login("dave")
    assert isinstance(await alice.room_invite(room, "@dave:localhost"), nio.RoomInviteResponse)
    invited = await raw_sync(hs, bob, since=quiet["next_batch"])
    assert invited["rooms"]["join"][room]["summary"]["m.invited_member_count"] == 1


async def test_gappy_timeline_pages_back_through_the_gap(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Busy", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await say(alice, room, "seen")
    await sync(bob)

    sent = []
    for n in range(15):
        sent.append(f"m{n:02}")
        await say(alice, room, sent[-1])
        if n == 3:
            rename = await alice.room_put_state(room, "m.room.name", {"name": "Renamed"})
            assert isinstance(rename, nio.RoomPutStateResponse)
    gappy = await sync(bob, sync_filter={"room": {"timeline": {"limit": 5}}})
    timeline = gappy.rooms.join[room].timeline
    assert timeline.limited is True
    assert texts(timeline.events) == sent[-5:]
    # The rename happened in the gap: it comes in `state`.
    names = [e for e in gappy.rooms.join[room].state if isinstance(e, nio.RoomNameEvent)]
    assert [e.name for e in names] == ["Renamed"]

    # Page back from prev_batch until the message bob saw before the gap.
    older: list[str] = []
    token = timeline.prev_batch
    for _ in range(10):
        page = await bob.room_messages(room, start=token, limit=4)
        assert isinstance(page, nio.RoomMessagesResponse), page
        older.extend(texts(page.chunk))
        if "seen" in older or not page.chunk:
            break
        token = page.end
    assert older[: older.index("seen")] == list(reversed(sent[:-5]))


async def test_limited_timelines_carry_bundled_aggregations(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Threads", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await say(bob, room, "older")
    root = await say(bob, room, "thread root")
    reply = await alice.room_send(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "in the thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    assert isinstance(reply, nio.RoomSendResponse), reply
    body = await raw_sync(
        hs, bob, filter={"room": {"timeline": {"limit": 1, "senders": ["@bob:localhost"]}}}
    )
    timeline = body["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is True
    [event] = timeline["events"]
    assert event["event_id"] == root
    thread = event["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 1
    assert thread["latest_event"]["event_id"] == reply.event_id


async def test_invite_then_accept_then_leave(hs, login):
    alice, bob = await login("alice"), await login("bob")
    await sync(bob)
    room = await create(alice, name="Private", topic="secrets", preset=nio.RoomPreset.private_chat)
    await say(alice, room, "before the invite")
    assert isinstance(await alice.room_invite(room, "@bob:localhost"), nio.RoomInviteResponse)

    invited = await raw_sync(hs, bob, since=bob.next_batch)
    assert room not in invited["rooms"].get("join", {})
    stripped = invited["rooms"]["invite"][room]["invite_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in stripped}
    assert by_type[("m.room.name", "")]["content"] == {"name": "Private"}
    assert by_type[("m.room.topic", "")]["content"]["topic"] == "secrets"
    assert by_type[("m.room.join_rules", "")]["content"] == {"join_rule": "invite"}
    assert ("m.room.create", "") in by_type
    assert by_type[("m.room.member", "@alice:localhost")]["content"]["membership"] == "join"
    # Stripped state events are only type, state_key, content and sender...
    assert set(by_type[("m.room.name", "")]) == {"type", "state_key", "content", "sender"}
    # ...and the invite itself comes last.
    assert stripped[-1]["state_key"] == "@bob:localhost"
    assert stripped[-1]["content"]["membership"] == "invite"
    assert stripped[-1]["sender"] == "@alice:localhost"
    # No messages or power levels leak into an invite.
    assert ("m.room.power_levels", "") not in by_type

    # nio sees the same, and the next sync has nothing new.
    invite_sync = await sync(bob)
    assert room in invite_sync.rooms.invite
    assert (await sync(bob)).rooms.invite == {}

    await join(bob, room)
    accepted = await sync(bob)
    assert room not in accepted.rooms.invite
    joined = accepted.rooms.join[room]
    assert joined.timeline.limited is True
    # A room joined since the last sync comes with its full state.
    timeline_and_state = joined.state + joined.timeline.events
    kinds = {e.source["type"] for e in timeline_and_state}
    assert {"m.room.create", "m.room.power_levels", "m.room.name", "m.room.topic"} <= kinds
    assert members_in(timeline_and_state) == {"@alice:localhost", "@bob:localhost"}
    assert "before the invite" in texts(joined.timeline.events)  # shared history
    assert joined.summary.joined_member_count == 2

    await say(alice, room, "still here?")
    assert isinstance(await bob.room_leave(room), nio.RoomLeaveResponse)
    await say(alice, room, "after bob left")
    left = await sync(bob)
    assert room not in left.rooms.join
    leave_timeline = left.rooms.leave[room].timeline.events
    assert texts(leave_timeline) == ["still here?"]
    assert leave_timeline[-1].source["content"]["membership"] == "leave"
    assert (await sync(bob)).rooms.leave == {}

    # An initial sync shows the left room only when asked.
    assert room not in (await raw_sync(hs, bob)).get("rooms", {}).get("leave", {})
    with_leave = await raw_sync(hs, bob, filter={"room": {"include_leave": True}})
    entry = with_leave["rooms"]["leave"][room]
    assert raw_texts(entry["timeline"]["events"])[-1] == "still here?"
    assert "after bob left" not in raw_texts(entry["timeline"]["events"])


async def test_a_knock_appears_in_rooms_knock_with_stripped_state(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(
        alice,
        name="Knock knock",
        preset=nio.RoomPreset.private_chat,
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}],
    )
    await sync(bob)
    status, body = await hs.request(
        "POST", f"{V3}/knock/{room}", token=bob.access_token, json={"reason": "let me in"}
    )
    assert status == 200, body
    knocked = await raw_sync(hs, bob, since=bob.next_batch)
    assert room not in knocked["rooms"].get("join", {})
    stripped = knocked["rooms"]["knock"][room]["knock_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in stripped}
    assert by_type[("m.room.name", "")]["content"] == {"name": "Knock knock"}
    assert by_type[("m.room.join_rules", "")]["content"] == {"join_rule": "knock"}
    assert stripped[-1]["content"] == {
        "membership": "knock",
        "reason": "let me in",
        "displayname": "bob",
    }
    assert stripped[-1]["sender"] == "@bob:localhost"


async def test_a_rejected_invite_leaves_and_shows_no_state(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Nope", preset=nio.RoomPreset.private_chat)
    await sync(bob)
    await alice.room_invite(room, "@bob:localhost")
    await say(alice, room, "hidden")
    assert isinstance(await bob.room_leave(room), nio.RoomLeaveResponse)
    body = await raw_sync(hs, bob, since=bob.next_batch)
    entry = body["rooms"]["leave"][room]
    assert entry["state"]["events"] == []
    memberships = [e["content"]["membership"] for e in entry["timeline"]["events"]]
    assert memberships == ["invite", "leave"]
    assert room not in body["rooms"].get("invite", {})


async def test_kicked_and_banned_rooms_move_to_leave(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Strict", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await sync(bob)
    assert isinstance(await alice.room_kick(room, "@bob:localhost", "bye"), nio.RoomKickResponse)
    kicked = await sync(bob)
    assert room not in kicked.rooms.join
    last = kicked.rooms.leave[room].timeline.events[-1]
    assert (last.source["content"]["membership"], last.sender) == ("leave", "@alice:localhost")
    # A kick shows in an initial sync even without include_leave (as in Synapse).
    body = await raw_sync(hs, bob)
    assert room in body["rooms"]["leave"]


async def test_history_visibility_is_respected(hs, login):
    alice, bob = await login("alice"), await login("bob")
    hidden = await create(
        alice,
        name="Joined only",
        preset=nio.RoomPreset.public_chat,
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    shared = await create(alice, name="Shared", preset=nio.RoomPreset.public_chat)
    await say(alice, hidden, "before bob (hidden)")
    await say(alice, shared, "before bob (shared)")
    await sync(bob)
    await join(bob, hidden)
    await join(bob, shared)
    await say(alice, hidden, "after bob")

    resp = await sync(bob)
    assert texts(resp.rooms.join[hidden].timeline.events) == ["after bob"]
    assert texts(resp.rooms.join[shared].timeline.events) == ["before bob (shared)"]
    # The state is still there, so the client knows the room.
    hidden_room = resp.rooms.join[hidden]
    names = [
        e
        for e in hidden_room.state + hidden_room.timeline.events
        if isinstance(e, nio.RoomNameEvent)
    ]
    assert [e.name for e in names] == ["Joined only"]
    fresh = await raw_sync(hs, bob)
    assert raw_texts(fresh["rooms"]["join"][hidden]["timeline"]["events"]) == ["after bob"]


async def test_an_ignored_users_messages_and_invites_are_not_delivered(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    room = await create(alice, name="Noisy", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await join(carol, room)
    await sync(bob)
    status, _ = await hs.request(
        "PUT",
        f"{V3}/user/@bob:localhost/account_data/m.ignored_user_list",
        token=bob.access_token,
        json={"ignored_users": {"@carol:localhost": {}}},
    )
    assert status == 200
    await say(carol, room, "spam")
    await say(alice, room, "hello")
    renamed = await carol.room_put_state(
        room,
        "m.room.member",
        {"membership": "join", "displayname": "Carol C"},
        state_key="@carol:localhost",
    )
    assert isinstance(renamed, nio.RoomPutStateResponse), renamed
    elsewhere = await create(carol, name="Trap", preset=nio.RoomPreset.private_chat)
    assert isinstance(await carol.room_invite(elsewhere, "@bob:localhost"), nio.RoomInviteResponse)

    resp = await sync(bob)
    events = resp.rooms.join[room].timeline.events
    assert texts(events) == ["hello"]
    # Their state events still count: the room's state must stay right.
    names = [e.content.get("displayname") for e in events if isinstance(e, nio.RoomMemberEvent)]
    assert names == ["Carol C"]
    assert elsewhere not in resp.rooms.invite
    # Alice, who ignores nobody, gets everything.
    assert raw_texts(await raw_sync_texts(hs, alice, room)) == ["spam", "hello"]


async def raw_sync_texts(hs: Any, client: nio.AsyncClient, room: str) -> list[str]:
    body = await raw_sync(hs, client, filter={"room": {"timeline": {"limit": 3}}})
    return body["rooms"]["join"][room]["timeline"]["events"]


async def test_full_state_resends_the_rooms_state(hs, login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Full", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    body = await raw_sync(hs, bob)
    again = await raw_sync(hs, bob, since=body["next_batch"], full_state=True)
    entry = again["rooms"]["join"][room]
    assert entry["timeline"]["events"] == []
    types = {e["type"] for e in entry["state"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.member", "m.room.power_levels"} <= types


async def test_a_long_poll_returns_with_the_other_users_message(login):
    alice, bob = await login("alice"), await login("bob")
    room = await create(alice, name="Live", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await sync(bob)
    poll = asyncio.create_task(bob.sync(timeout=30_000))
    await asyncio.sleep(0.1)
    await say(alice, room, "wake up")
    resp = await asyncio.wait_for(poll, 20)
    assert isinstance(resp, nio.SyncResponse), resp
    assert texts(resp.rooms.join[room].timeline.events) == ["wake up"]


_counting: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "counting", default=None
)


@pytest.fixture
def query_log(monkeypatch) -> list[list[str]]:
    """The statements each RoomsSyncProvider.add ran, one list per call."""
    calls: list[list[str]] = []
    original_add = RoomsSyncProvider.add

    async def add(self, request, response):
        log: list[str] = []
        calls.append(log)
        token = _counting.set(log)
        try:
            await original_add(self, request, response)
        finally:
            _counting.reset(token)

    monkeypatch.setattr(RoomsSyncProvider, "add", add)
    for name in ("fetch", "fetchrow", "fetchval", "execute"):
        original = getattr(asyncpg.Pool, name)

        def counted(original: Any) -> Any:
            async def method(self, query, *args, **kwargs):
                log = _counting.get()
                if log is not None:
                    log.append(query)
                return await original(self, query, *args, **kwargs)

            return method

        monkeypatch.setattr(asyncpg.Pool, name, counted(original))
    return calls


async def test_queries_do_not_grow_with_the_number_of_rooms(hs, login, query_log):
    alice, bob = await login("alice"), await login("bob")

    async def rooms_and_syncs(count: int) -> tuple[int, int]:
        rooms = [await create(alice, preset=nio.RoomPreset.public_chat) for _ in range(count)]
        for room in rooms:
            await join(bob, room)
            await say(alice, room, "hi")
        query_log.clear()
        body = await raw_sync(hs, bob, filter={"room": {"timeline": {"limit": 3}}})
        assert len(body["rooms"]["join"]) >= count
        for room in rooms:
            await say(alice, room, "more")
            await say(alice, room, "and more")
            await say(alice, room, "and even more")
            await say(alice, room, "gap")
        await raw_sync(
            hs, bob, since=body["next_batch"], filter={"room": {"timeline": {"limit": 3}}}
        )
        return len(query_log[0]), len(query_log[1])

    few = await rooms_and_syncs(2)
    many = await rooms_and_syncs(8)
    # Never more; fewer when what the first round read is still known (the
    # device's key counts, the ignored users).
    assert many[0] <= few[0] and many[1] <= few[1]
    assert many[0] < 20 and many[1] < 20


def test_heroes_follow_synapse():
    counts = MemberCounts(
        3,
        1,
        None,
        None,
        [
            ("@me:x", "join", "$1"),
            ("@zed:x", "join", "$2"),
            ("@amy:x", "join", "$3"),
            ("@inv:x", "invite", "$4"),
            ("@gone:x", "leave", "$5"),
        ],
    )
    assert heroes(counts, "@me:x") == [("@amy:x", "$3"), ("@inv:x", "$4"), ("@zed:x", "$2")]
    alone = MemberCounts(1, 0, None, None, [("@me:x", "join", "$1"), ("@b:x", "leave", "$2")])
    assert heroes(alone, "@me:x") == [("@b:x", "$2")]


async def test_lazy_loaded_members_are_not_resent_to_a_device(hs, login):
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    room = await create(alice, name="Lazy", preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await join(carol, room)
    await say(alice, room, "one")
    await say(carol, room, "two")
    lazy = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    redundant = {
        "room": {
            "timeline": {"limit": 2},
            "state": {"lazy_load_members": True, "include_redundant_members": True},
        }
    }

    first = await raw_sync(hs, bob, filter=lazy)
    state = first["rooms"]["join"][room]["state"]["events"]
    assert {e["state_key"] for e in state if e["type"] == "m.room.member"} == {
        "@alice:localhost",
        "@bob:localhost",
        "@carol:localhost",
    }
    # The same senders again (after a gap): the device has their member events.
    for text in ("three", "four", "five"):
        await say(alice, room, text)
    await say(carol, room, "six")
    second = await raw_sync(hs, bob, filter=lazy, since=first["next_batch"])
    entry = second["rooms"]["join"][room]
    assert raw_texts(entry["timeline"]["events"]) == ["five", "six"]
    assert entry["timeline"]["limited"] is True
    assert [e for e in entry["state"]["events"] if e["type"] == "m.room.member"] == []

    # Asked for, they come every time; a changed member event comes anyway.
    asked = await raw_sync(hs, bob, filter=redundant, since=first["next_batch"])
    state = asked["rooms"]["join"][room]["state"]["events"]
    assert {e["state_key"] for e in state if e["type"] == "m.room.member"} == {
        "@alice:localhost",
        "@carol:localhost",
    }
    await alice.set_displayname("Alice A.")
    await say(bob, room, "seven")
    for text in ("eight", "nine"):
        await say(alice, room, text)
    third = await raw_sync(hs, bob, filter=lazy, since=second["next_batch"])
    state = third["rooms"]["join"][room]["state"]["events"]
    assert [(e["state_key"], e["content"].get("displayname")) for e in state] == [
        ("@alice:localhost", "Alice A.")
    ]


async def test_current_state_shows_through_joined_history_visibility(hs, login):
    """A join that happened while the user was away is in the timeline of
    their next sync, even behind many messages they may not see."""
    alice, bob, carol = await login("alice"), await login("bob"), await login("carol")
    room = await create(alice, preset=nio.RoomPreset.public_chat)
    await join(bob, room)
    await alice.room_put_state(room, "m.room.history_visibility", {"history_visibility": "joined"})
    since = (await sync(bob)).next_batch
    assert isinstance(await bob.room_leave(room), nio.RoomLeaveResponse)
    await join(carol, room)
    for i in range(25):
        await say(alice, room, f"m{i}")
    await join(bob, room)
    body = await raw_sync(hs, bob, since=since)
    timeline = body["rooms"]["join"][room]["timeline"]["events"]
    members = [
        (e["state_key"], e["content"]["membership"])
        for e in timeline
        if e["type"] == "m.room.member"
    ]
    assert ("@carol:localhost", "join") in members
    assert ("@bob:localhost", "join") in members
    assert raw_texts(timeline) == []
