"""Server-side search (POST /search) over real rooms, as a client sees it."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from homeserver.rooms.search import parse_search_term

SEARCH = "/_matrix/client/v3/search"
_txn = itertools.count()


async def _room(hs: Any, token: str, **body: Any) -> str:
    status, resp = await hs.request("POST", "/_matrix/client/v3/createRoom", token=token, json=body)
    assert status == 200, resp
    return resp["room_id"]


async def _send(hs: Any, token: str, room_id: str, body: str) -> str:
    status, resp = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t{next(_txn)}",
        token=token,
        json={"msgtype": "m.text", "body": body},
    )
    assert status == 200, resp
    return resp["event_id"]


async def _search(
    hs: Any, token: str, next_batch: str | None = None, **criteria: Any
) -> dict[str, Any]:
    path = SEARCH + (f"?next_batch={next_batch}" if next_batch else "")
    status, body = await hs.request(
        "POST", path, token=token, json={"search_categories": {"room_events": criteria}}
    )
    assert status == 200, body
    return body["search_categories"]["room_events"]


def _bodies(result: dict[str, Any]) -> list[str]:
    return [r["result"]["content"].get("body") for r in result["results"]]


@pytest.fixture
async def world(hs: Any) -> dict[str, Any]:
    """Alice and Bob share a public room; Bob has a private room; Carol is alone."""
    alice = (await hs.register("alice"))["access_token"]
    bob = (await hs.register("bob"))["access_token"]
    shared = await _room(hs, alice, preset="public_chat", name="Martian embassy")
    status, _ = await hs.request("POST", f"/_matrix/client/v3/join/{shared}", token=bob)
    assert status == 200
    secret = await _room(hs, bob, name="Bob's den")
    ids = {
        "one": await _send(hs, alice, shared, "the martians have landed"),
        "two": await _send(hs, bob, shared, "martians martians martians, everywhere martians"),
        "three": await _send(hs, alice, shared, "nothing to see here"),
        "four": await _send(hs, bob, secret, "secret martians plans"),
        "five": await _send(hs, alice, shared, "Martian tea at five"),
    }
    return {"alice": alice, "bob": bob, "shared": shared, "secret": secret, "ids": ids}


async def test_rank_order_bodies_and_count(hs, world):
    result = await _search(hs, world["alice"], search_term="martians", keys=["content.body"])
    assert _bodies(result) == [
        "martians martians martians, everywhere martians",
        "the martians have landed",
    ]
    assert result["count"] == 2
    assert result["results"][0]["rank"] > result["results"][1]["rank"] > 0
    first = result["results"][0]["result"]
    assert first["event_id"] == world["ids"]["two"]
    assert first["sender"] == "@bob:localhost"
    assert first["room_id"] == world["shared"]
    assert "martians" in result["highlights"]
    assert "next_batch" not in result


async def test_prefix_matches_and_recent_order(hs, world):
    result = await _search(
        hs, world["alice"], search_term="MART", order_by="recent", keys=["content.body"]
    )
    assert _bodies(result) == [
        "Martian tea at five",
        "martians martians martians, everywhere martians",
        "the martians have landed",
    ]
    assert {"mart", "Martian", "martians"} <= set(result["highlights"])


async def test_no_results_from_rooms_the_user_is_not_in(hs, world):
    alice = await _search(hs, world["alice"], search_term="secret")
    assert alice == {"count": 0, "highlights": ["secret"], "results": []}
    bob = await _search(hs, world["bob"], search_term="secret")
    assert _bodies(bob) == ["secret martians plans"]
    carol = (await hs.register("carol"))["access_token"]
    assert (await _search(hs, carol, search_term="martians"))["results"] == []
    # Asking for the room by name does not open it either.
    filtered = await _search(
        hs, world["alice"], search_term="martians", filter={"rooms": [world["secret"]]}
    )
    assert filtered["results"] == []


async def test_left_room_is_searched_up_to_the_leave_until_forgotten(hs, world):
    bob, shared = world["bob"], world["shared"]
    status, _ = await hs.request("POST", f"/_matrix/client/v3/rooms/{shared}/leave", token=bob)
    assert status == 200
    await _send(hs, world["alice"], shared, "martians after bob left")
    result = await _search(hs, bob, search_term="martians", order_by="recent", include_state=True)
    assert _bodies(result) == [
        "secret martians plans",
        "martians martians martians, everywhere martians",
        "the martians have landed",
    ]
    # The current state only of the rooms Bob is still in.
    assert list(result["state"]) == [world["secret"]]
    status, _ = await hs.request("POST", f"/_matrix/client/v3/rooms/{shared}/forget", token=bob)
    assert status == 200
    result = await _search(hs, bob, search_term="martians", order_by="recent")
    assert _bodies(result) == ["secret martians plans"]


async def test_history_visibility_hides_messages_from_before_a_join(hs):
    alice = (await hs.register("alice"))["access_token"]
    dave = (await hs.register("dave"))["access_token"]
    room = await _room(
        hs,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    await _send(hs, alice, room, "early secret words")
    status, _ = await hs.request("POST", f"/_matrix/client/v3/join/{room}", token=dave)
    assert status == 200
    await _send(hs, alice, room, "later secret words")
    result = await _search(hs, dave, search_term="secret", event_context={"before_limit": 3})
    assert _bodies(result) == ["later secret words"]
    context = result["results"][0]["context"]
    # Dave sees his own join just before it, not the message from before it.
    before = context["events_before"]
    assert before[0]["type"] == "m.room.member" and before[0]["state_key"] == "@dave:localhost"
    assert "m.room.message" not in [e["type"] for e in before]
    assert _bodies(await _search(hs, alice, search_term="secret", order_by="recent")) == [
        "later secret words",
        "early secret words",
    ]


async def test_room_and_sender_filters(hs, world):
    bob = world["bob"]
    by_room = await _search(
        hs, bob, search_term="martians", order_by="recent", filter={"rooms": [world["secret"]]}
    )
    assert _bodies(by_room) == ["secret martians plans"]
    not_room = await _search(
        hs, bob, search_term="martians", order_by="recent", filter={"not_rooms": [world["secret"]]}
    )
    assert [r["result"]["room_id"] for r in not_room["results"]] == [world["shared"]] * 2
    by_sender = await _search(
        hs, bob, search_term="martians", order_by="recent", filter={"senders": ["@alice:localhost"]}
    )
    # A prefix, not a stem: "martians" does not find "Martian".
    assert _bodies(by_sender) == ["the martians have landed"]
    not_sender = await _search(
        hs,
        bob,
        search_term="martians",
        order_by="recent",
        filter={"not_senders": ["@alice:localhost"]},
    )
    assert {r["result"]["sender"] for r in not_sender["results"]} == {"@bob:localhost"}
    assert not_sender["count"] == 2


async def test_keys_and_types_select_names_and_topics(hs, world):
    names = await _search(hs, world["alice"], search_term="embassy", keys=["content.name"])
    assert [r["result"]["content"] for r in names["results"]] == [{"name": "Martian embassy"}]
    assert names["results"][0]["result"]["type"] == "m.room.name"
    assert names["results"][0]["result"]["state_key"] == ""
    only_bodies = await _search(hs, world["alice"], search_term="embassy", keys=["content.body"])
    assert only_bodies["results"] == []
    no_messages = await _search(
        hs, world["alice"], search_term="martian", filter={"not_types": ["m.room.message"]}
    )
    assert [r["result"]["type"] for r in no_messages["results"]] == ["m.room.name"]
    wildcard = await _search(
        hs, world["alice"], search_term="martian", filter={"types": ["m.room.n*"]}
    )
    assert [r["result"]["type"] for r in wildcard["results"]] == ["m.room.name"]


async def test_phrases_or_and_exclusion(hs, world):
    alice = world["alice"]
    phrase = await _search(hs, alice, search_term='"have landed"')
    assert _bodies(phrase) == ["the martians have landed"]
    assert (await _search(hs, alice, search_term='"landed have"'))["results"] == []
    either = await _search(hs, alice, search_term="landed or tea", order_by="recent")
    assert _bodies(either) == ["Martian tea at five", "the martians have landed"]
    excluded = await _search(
        hs, alice, search_term="martian -everywhere", order_by="recent", keys=["content.body"]
    )
    assert _bodies(excluded) == ["Martian tea at five", "the martians have landed"]


@pytest.mark.parametrize("order_by", ["recent", "rank"])
async def test_pagination_with_next_batch(hs, order_by):
    token = (await hs.register("paula"))["access_token"]
    room = await _room(hs, token)
    sent = [
        await _send(hs, token, room, " ".join(["page"] * (1 + i % 3) + [f"number{i}"]))
        for i in range(7)
    ]
    criteria = {"search_term": "page", "order_by": order_by, "filter": {"limit": 3}}
    seen: list[dict[str, Any]] = []
    next_batch = None
    pages = 0
    while True:
        result = await _search(hs, token, next_batch, **criteria)
        pages += 1
        assert result["count"] == 7
        assert len(result["results"]) <= 3
        seen.extend(result["results"])
        next_batch = result.get("next_batch")
        if next_batch is None:
            break
    assert pages == 3
    ids = [r["result"]["event_id"] for r in seen]
    assert sorted(ids) == sorted(sent) and len(set(ids)) == 7
    if order_by == "recent":
        assert ids == sent[::-1]
    else:
        keys = [(r["rank"], sent.index(r["result"]["event_id"])) for r in seen]
        assert keys == sorted(keys, reverse=True)
        assert seen[0]["rank"] > seen[-1]["rank"]


async def test_groups_by_room_paginate_within_the_group(hs, world):
    bob = world["bob"]
    for i in range(3):
        await _send(hs, bob, world["secret"], f"more martians {i}")
    result = await _search(
        hs,
        bob,
        search_term="martians",
        order_by="recent",
        filter={"limit": 2},
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
    )
    groups = result["groups"]["room_id"]
    assert list(groups) == [world["secret"]]
    assert groups[world["secret"]]["results"] == [
        r["result"]["event_id"] for r in result["results"]
    ]
    assert groups[world["secret"]]["order"] == 1
    assert list(result["groups"]["sender"]) == ["@bob:localhost"]
    in_group = await _search(
        hs,
        bob,
        groups[world["secret"]]["next_batch"],
        search_term="martians",
        order_by="recent",
        filter={"limit": 2},
    )
    assert _bodies(in_group) == ["more martians 0", "secret martians plans"]
    assert "next_batch" not in in_group


async def test_event_context_profiles_and_state(hs, world):
    alice, shared = world["alice"], world["shared"]
    status, _ = await hs.request(
        "PUT",
        "/_matrix/client/v3/profile/@bob:localhost/displayname",
        token=world["bob"],
        json={"displayname": "Bob the Builder"},
    )
    assert status == 200
    result = await _search(
        hs,
        alice,
        search_term="landed",
        event_context={"before_limit": 1, "after_limit": 2, "include_profile": True},
        include_state=True,
    )
    [hit] = result["results"]
    context = hit["context"]
    [before] = context["events_before"]
    assert (before["type"], before["state_key"]) == ("m.room.member", "@bob:localhost")
    assert [e["content"]["body"] for e in context["events_after"]] == [
        "martians martians martians, everywhere martians",
        "nothing to see here",
    ]
    assert context["start"].startswith("t") and context["end"].startswith("t")
    # The profile as it was then: Bob's join carried his old display name.
    assert context["profile_info"]["@bob:localhost"] == {"displayname": "bob"}
    assert context["profile_info"]["@alice:localhost"] == {"displayname": "alice"}
    state = result["state"][shared]
    names = [e["content"] for e in state if e["type"] == "m.room.name"]
    assert names == [{"name": "Martian embassy"}]
    members = {e["state_key"] for e in state if e["type"] == "m.room.member"}
    assert members == {"@alice:localhost", "@bob:localhost"}


async def test_redacted_events_are_not_found(hs, world):
    status, _ = await hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{world['shared']}/redact/{world['ids']['one']}/r1",
        token=world["alice"],
        json={},
    )
    assert status == 200
    result = await _search(hs, world["alice"], search_term="landed")
    assert result["results"] == [] and result["count"] == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_BAD_JSON"),
        ({"search_categories": []}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {}}}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {"search_term": 5}}}, "M_BAD_JSON"),
        (
            {"search_categories": {"room_events": {"search_term": "x", "order_by": "best"}}},
            "M_INVALID_PARAM",
        ),
        (
            {"search_categories": {"room_events": {"search_term": "x", "keys": ["content.url"]}}},
            "M_INVALID_PARAM",
        ),
        (
            {"search_categories": {"room_events": {"search_term": "x", "filter": {"limit": 0}}}},
            "M_BAD_JSON",
        ),
        (
            {
                "search_categories": {
                    "room_events": {"search_term": "x", "groupings": {"group_by": [{"key": "x"}]}}
                }
            },
            "M_BAD_JSON",
        ),
    ],
)
async def test_bad_requests(hs, body, errcode):
    token = (await hs.register("eve"))["access_token"]
    status, resp = await hs.request("POST", SEARCH, token=token, json=body)
    assert (status, resp["errcode"]) == (400, errcode)


async def test_bad_next_batch_and_no_token(hs, world):
    criteria = {"search_categories": {"room_events": {"search_term": "martians"}}}
    status, resp = await hs.request(
        "POST", SEARCH + "?next_batch=garbage", token=world["alice"], json=criteria
    )
    assert (status, resp["errcode"]) == (400, "M_INVALID_PARAM")
    status, resp = await hs.request("POST", SEARCH, json=criteria)
    assert (status, resp["errcode"]) == (401, "M_MISSING_TOKEN")


def test_parse_search_term():
    assert parse_search_term("Hello world").tsquery == "'hello':* & 'world':*"
    assert parse_search_term('"big cat" or dog -fish').tsquery == (
        "('big':* <-> 'cat':*) | 'dog':* & !('fish':*)"
    )
    assert parse_search_term("don't").tsquery == "('don':* <-> 't':*)"
    assert parse_search_term("it's O'Brien").words == ("it", "s", "o", "brien")
    assert parse_search_term("-only -negative").tsquery is None
    assert parse_search_term("  !!! ").tsquery is None
