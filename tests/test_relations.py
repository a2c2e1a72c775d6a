"""Relations, threads and bundled aggregations, over raw HTTP (matrix-nio has
no calls for /relations or /threads)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from urllib.parse import quote, urlencode

import pytest

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
_txn = itertools.count()


class User:
    """A registered user sending requests to the test server."""

    def __init__(self, hs: Any, token: str, user_id: str) -> None:
        self.hs, self.token, self.user_id = hs, token, user_id

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.hs.request(method, path, token=self.token, json=json)

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        status, body = await self.call(
            "PUT", f"{V3}/rooms/{quote(room_id)}/send/{event_type}/t{next(_txn)}", content
        )
        assert status == 200, body
        # Distinct origin_server_ts values make "most recent edit" unambiguous.
        await asyncio.sleep(0.003)
        return body["event_id"]

    async def event(self, room_id: str, event_id: str) -> dict[str, Any]:
        status, body = await self.call(
            "GET", f"{V3}/rooms/{quote(room_id)}/event/{quote(event_id)}"
        )
        assert status == 200, body
        return body

    async def relations(
        self, room_id: str, event_id: str, *tail: str, **query: Any
    ) -> tuple[int, Any]:
        path = "/".join(
            [f"{V1}/rooms/{quote(room_id)}/relations/{quote(event_id)}", *map(quote, tail)]
        )
        return await self.call("GET", path + (f"?{urlencode(query)}" if query else ""))

    async def threads(self, room_id: str, **query: Any) -> tuple[int, Any]:
        path = f"{V1}/rooms/{quote(room_id)}/threads"
        return await self.call("GET", path + (f"?{urlencode(query)}" if query else ""))


async def make_user(hs: Any, name: str) -> User:
    body = await hs.register(name)
    return User(hs, body["access_token"], body["user_id"])


@pytest.fixture
async def room(hs: Any) -> tuple[str, User, User, User]:
    """A public room that alice created and bob and carol joined."""
    alice, bob, carol = [await make_user(hs, n) for n in ("alice", "bob", "carol")]
    status, body = await alice.call("POST", f"{V3}/createRoom", {"preset": "public_chat"})
    assert status == 200, body
    room_id = body["room_id"]
    for user in (bob, carol):
        status, body = await user.call("POST", f"{V3}/rooms/{quote(room_id)}/join", {})
        assert status == 200, body
    return room_id, alice, bob, carol


def text(body: str, **relates: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if relates:
        content["m.relates_to"] = relates
    return content


def in_thread(root: str, body: str) -> dict[str, Any]:
    return text(body, rel_type="m.thread", event_id=root)


def edit(original: str, body: str) -> dict[str, Any]:
    return {
        **text(f"* {body}", rel_type="m.replace", event_id=original),
        "m.new_content": text(body),
    }


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events]


async def test_thread_summary_counts_latest_and_participation(room):
    room_id, alice, bob, carol = room
    root = await alice.send(room_id, text("What shall we eat?"))
    assert "m.relations" not in (await alice.event(room_id, root))["unsigned"]
    await bob.send(room_id, in_thread(root, "Pizza"))
    last = await bob.send(room_id, in_thread(root, "Or pasta"))

    for user, participated in ((alice, True), (bob, True), (carol, False)):
        thread = (await user.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]
        assert thread["count"] == 2
        assert thread["current_user_participated"] is participated
        latest = thread["latest_event"]
        assert (latest["event_id"], latest["sender"]) == (last, bob.user_id)
        assert latest["content"]["body"] == "Or pasta"

    # Carol replies: she now participates, and her reply is the latest.
    await carol.send(room_id, in_thread(root, "Both"))
    thread = (await carol.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert (thread["count"], thread["current_user_participated"]) == (3, True)
    assert thread["latest_event"]["content"]["body"] == "Both"
    # The replies themselves carry no thread summary.
    assert "m.relations" not in (await alice.event(room_id, last))["unsigned"]


async def test_redacted_thread_reply_leaves_the_summary(room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    await bob.send(room_id, in_thread(root, "first"))
    second = await bob.send(room_id, in_thread(root, "second"))
    status, body = await bob.call(
        "PUT", f"{V3}/rooms/{quote(room_id)}/redact/{quote(second)}/r1", {}
    )
    assert status == 200, body
    thread = (await alice.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert thread["count"] == 1
    assert thread["latest_event"]["content"]["body"] == "first"


async def test_latest_valid_edit_is_bundled_in_full(room):
    room_id, alice, bob, _ = room
    original = await alice.send(room_id, text("I like cake"))
    await alice.send(room_id, edit(original, "I like chocolate cake"))
    latest = await alice.send(room_id, edit(original, "I like lemon cake"))
    # Ignored: someone else's edit, an edit without m.new_content, a different type.
    await bob.send(room_id, edit(original, "Bob was here"))
    await alice.send(room_id, text("* no new content", rel_type="m.replace", event_id=original))
    await alice.send(room_id, edit(original, "as a notice"), event_type="org.example.other")

    served = await bob.event(room_id, original)
    assert served["content"] == text("I like cake")  # the server never applies edits
    replace = served["unsigned"]["m.relations"]["m.replace"]
    assert (replace["event_id"], replace["sender"]) == (latest, alice.user_id)
    assert replace["type"] == "m.room.message"
    assert replace["content"]["m.new_content"]["body"] == "I like lemon cake"
    assert replace["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": original}

    # Redacting the latest edit falls back to the one before.
    status, _ = await alice.call(
        "PUT", f"{V3}/rooms/{quote(room_id)}/redact/{quote(latest)}/r2", {}
    )
    assert status == 200
    replace = (await bob.event(room_id, original))["unsigned"]["m.relations"]["m.replace"]
    assert replace["content"]["m.new_content"]["body"] == "I like chocolate cake"

    # Redacting the original: no aggregations at all, edits stay as they were.
    status, _ = await alice.call(
        "PUT", f"{V3}/rooms/{quote(room_id)}/redact/{quote(original)}/r3", {}
    )
    assert status == 200
    served = await bob.event(room_id, original)
    assert served["content"] == {}
    assert "m.relations" not in served["unsigned"]


async def test_edit_by_another_user_alone_is_not_bundled(room):
    room_id, alice, bob, _ = room
    original = await alice.send(room_id, text("mine"))
    await bob.send(room_id, edit(original, "yours"))
    assert "m.relations" not in (await alice.event(room_id, original))["unsigned"]
    # An edit of an edit is not an edit.
    own = await alice.send(room_id, edit(original, "still mine"))
    await alice.send(room_id, edit(own, "edit of edit"))
    assert "m.relations" not in (await alice.event(room_id, own))["unsigned"]


async def test_references_and_no_annotation_aggregation(room):
    room_id, alice, bob, _ = room
    target = await alice.send(room_id, text("verify me"))
    first = await bob.send(
        room_id, {"m.relates_to": {"rel_type": "m.reference", "event_id": target}}, "m.key.x"
    )
    second = await alice.send(
        room_id, {"m.relates_to": {"rel_type": "m.reference", "event_id": target}}, "m.key.y"
    )
    await bob.send(
        room_id,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "👍"}},
        "m.reaction",
    )
    relations = (await alice.event(room_id, target))["unsigned"]["m.relations"]
    assert relations == {"m.reference": {"chunk": [{"event_id": first}, {"event_id": second}]}}


async def test_latest_thread_event_carries_its_own_edit(room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    reply = await bob.send(room_id, in_thread(root, "typo"))
    fix = await bob.send(room_id, edit(reply, "fixed"))
    thread = (await alice.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]
    # The edit does not count as a thread reply: it relates to the reply.
    assert thread["count"] == 1
    latest = thread["latest_event"]
    assert latest["event_id"] == reply
    assert latest["unsigned"]["m.relations"]["m.replace"]["event_id"] == fix


async def test_relations_pagination_in_both_directions(room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    replies = [await bob.send(room_id, in_thread(root, f"r{i}")) for i in range(5)]

    status, page1 = await alice.relations(room_id, root, limit=2)
    assert status == 200
    assert [e["event_id"] for e in page1["chunk"]] == [replies[4], replies[3]]
    assert "prev_batch" not in page1
    status, page2 = await alice.relations(room_id, root, limit=2, **{"from": page1["next_batch"]})
    assert bodies(page2["chunk"]) == ["r2", "r1"]
    assert page2["prev_batch"] == page1["next_batch"]
    status, page3 = await alice.relations(room_id, root, limit=2, **{"from": page2["next_batch"]})
    assert bodies(page3["chunk"]) == ["r0"]
    assert "next_batch" not in page3

    # A `to` token bounds the range: from page 1's end to page 2's end is page 2.
    status, bounded = await alice.relations(
        room_id, root, **{"from": page1["next_batch"], "to": page2["next_batch"]}
    )
    assert bodies(bounded["chunk"]) == ["r2", "r1"]

    status, fwd1 = await alice.relations(room_id, root, dir="f", limit=3)
    assert bodies(fwd1["chunk"]) == ["r0", "r1", "r2"]
    status, fwd2 = await alice.relations(
        room_id, root, dir="f", limit=3, **{"from": fwd1["next_batch"]}
    )
    assert bodies(fwd2["chunk"]) == ["r3", "r4"]
    assert "next_batch" not in fwd2

    # Everything at once; the default page is small.
    status, everything = await alice.relations(room_id, root, limit=50)
    assert bodies(everything["chunk"]) == ["r4", "r3", "r2", "r1", "r0"]
    status, default = await alice.relations(room_id, root, dir="f")
    assert len(default["chunk"]) == 5 and "next_batch" not in default
    assert all(e["room_id"] == room_id for e in everything["chunk"])


async def test_relations_filtered_by_rel_type_and_event_type(room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    reply = await bob.send(room_id, in_thread(root, "reply"))
    reaction = await bob.send(
        room_id,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "🎉"}},
        "m.reaction",
    )
    other_root = await alice.send(room_id, text("unrelated"))
    await bob.send(room_id, in_thread(other_root, "elsewhere"))

    status, body = await alice.relations(room_id, root)
    assert [e["event_id"] for e in body["chunk"]] == [reaction, reply]
    status, body = await alice.relations(room_id, root, "m.thread")
    assert [e["event_id"] for e in body["chunk"]] == [reply]
    status, body = await alice.relations(room_id, root, "m.annotation", "m.reaction")
    assert [e["event_id"] for e in body["chunk"]] == [reaction]
    assert body["chunk"][0]["content"]["m.relates_to"]["key"] == "🎉"
    status, body = await alice.relations(room_id, root, "m.annotation", "m.room.message")
    assert (status, body) == (200, {"chunk": []})
    status, body = await alice.relations(room_id, root, "m.reference")
    assert body["chunk"] == []


async def test_relations_recurse_reaches_indirect_children(room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    reply = await bob.send(room_id, in_thread(root, "reply"))
    fix = await bob.send(room_id, edit(reply, "fixed reply"))

    status, body = await alice.relations(room_id, root)
    assert [e["event_id"] for e in body["chunk"]] == [reply]
    assert "recursion_depth" not in body
    status, body = await alice.relations(room_id, root, recurse="true")
    assert [e["event_id"] for e in body["chunk"]] == [fix, reply]
    assert body["recursion_depth"] == 3
    # The filter applies to every level.
    status, body = await alice.relations(room_id, root, "m.replace", recurse="true")
    assert [e["event_id"] for e in body["chunk"]] == [fix]
    # Served children carry their own aggregations.
    status, body = await alice.relations(room_id, root, "m.thread", recurse="false")
    assert body["recursion_depth"] == 1
    assert body["chunk"][0]["unsigned"]["m.relations"]["m.replace"]["event_id"] == fix


async def test_relations_refused_and_bad_input(hs, room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    await bob.send(room_id, in_thread(root, "reply"))
    outsider = await make_user(hs, "mallory")

    status, body = await outsider.relations(room_id, root)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await outsider.threads(room_id)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await alice.relations("!nowhere:localhost", root)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await alice.relations(room_id, "$unknown")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # An event of another room is not found through this one.
    status, other = await alice.call("POST", f"{V3}/createRoom", {})
    elsewhere = await alice.send(other["room_id"], text("elsewhere"))
    status, body = await alice.relations(room_id, elsewhere)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    for query in (
        {"dir": "x"},
        {"limit": "many"},
        {"limit": "-1"},
        {"from": "nonsense"},
        {"to": "t1-99999999999999999999"},
        {"from": "s9999999999999999999"},
    ):
        status, body = await alice.relations(room_id, root, **query)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query
    status, body = await alice.relations(room_id, root, recurse="yes")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    for query in ({"include": "some"}, {"limit": "0"}, {"from": "x_y"}):
        status, body = await alice.threads(room_id, **query)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query


async def test_relations_and_threads_follow_history_visibility(hs, room):
    room_id, alice, bob, _ = room
    status, _ = await alice.call(
        "PUT",
        f"{V3}/rooms/{quote(room_id)}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
    )
    assert status == 200
    early = await alice.send(room_id, text("before dave"))
    await bob.send(room_id, in_thread(early, "early reply"))
    dave = await make_user(hs, "dave")
    status, _ = await dave.call("POST", f"{V3}/rooms/{quote(room_id)}/join", {})
    assert status == 200
    late = await alice.send(room_id, text("after dave"))
    await dave.send(room_id, in_thread(late, "dave's reply"))

    # Dave joined after `early`: he cannot see it, its children, or its thread.
    status, body = await dave.relations(room_id, early)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await dave.threads(room_id)
    assert [e["event_id"] for e in body["chunk"]] == [late]
    status, body = await alice.threads(room_id)
    assert [e["event_id"] for e in body["chunk"]] == [late, early]

    # Bob leaves; what came after is hidden from him, what came before is not.
    status, _ = await bob.call("POST", f"{V3}/rooms/{quote(room_id)}/leave", {})
    assert status == 200
    await alice.send(room_id, in_thread(late, "after bob left"))
    status, body = await bob.relations(room_id, late)
    assert (status, bodies(body["chunk"])) == (200, ["dave's reply"])
    status, body = await alice.relations(room_id, late)
    assert bodies(body["chunk"]) == ["after bob left", "dave's reply"]

    # Once he forgets the room, he may not read it at all.
    status, _ = await bob.call("POST", f"{V3}/rooms/{quote(room_id)}/forget", {})
    assert status == 200
    status, body = await bob.relations(room_id, late)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_threads_ordered_by_latest_activity(room):
    room_id, alice, bob, carol = room
    first = await alice.send(room_id, text("first topic"))
    second = await bob.send(room_id, text("second topic"))
    third = await carol.send(room_id, text("third topic"))
    await alice.send(room_id, text("not a thread"))
    await carol.send(room_id, in_thread(first, "on first"))
    await alice.send(room_id, in_thread(second, "on second"))
    await carol.send(room_id, in_thread(third, "on third"))
    await bob.send(room_id, in_thread(first, "first again"))

    status, body = await alice.threads(room_id)
    assert status == 200
    assert [e["event_id"] for e in body["chunk"]] == [first, third, second]
    assert "next_batch" not in body
    summary = body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2
    assert summary["latest_event"]["content"]["body"] == "first again"
    assert summary["current_user_participated"] is True

    # Paginated one at a time.
    seen, token = [], None
    while True:
        query: dict[str, Any] = {"limit": 1} | ({"from": token} if token else {})
        status, page = await alice.threads(room_id, **query)
        seen += [e["event_id"] for e in page["chunk"]]
        token = page.get("next_batch")
        if token is None:
            break
    assert seen == [first, third, second]

    # Participated: bob started `second` and replied in `first`; carol replied in
    # `first` and `third`; alice started `first` and replied in `second`.
    for user, expected in ((bob, [first, second]), (carol, [first, third])):
        status, body = await user.threads(room_id, include="participated")
        assert [e["event_id"] for e in body["chunk"]] == expected
    status, body = await alice.threads(room_id, include="participated")
    assert [e["event_id"] for e in body["chunk"]] == [first, second]


async def test_threads_empty_room(room):
    room_id, alice, _, _ = room
    await alice.send(room_id, text("hello"))
    assert await alice.threads(room_id) == (200, {"chunk": []})


async def test_aggregations_on_messages_and_context_and_tokens_shared(room):
    room_id, alice, bob, _ = room
    root = await alice.send(room_id, text("root"))
    reply = await bob.send(room_id, in_thread(root, "reply"))
    fix = await alice.send(room_id, edit(root, "root, edited"))

    status, page = await alice.call("GET", f"{V3}/rooms/{quote(room_id)}/messages?dir=b&limit=3")
    assert status == 200, page
    served = {e["event_id"]: e for e in page["chunk"]}
    relations = served[root]["unsigned"]["m.relations"]
    assert relations["m.replace"]["event_id"] == fix
    assert relations["m.thread"]["latest_event"]["event_id"] == reply
    assert "m.relations" not in served[reply]["unsigned"]

    status, context = await alice.call(
        "GET", f"{V3}/rooms/{quote(room_id)}/context/{quote(root)}?limit=2"
    )
    assert status == 200, context
    assert context["event"]["unsigned"]["m.relations"]["m.thread"]["count"] == 1

    # A /messages token is a valid /relations bound: from the gap before the
    # reply (the `end` of a page that stopped at it), backwards, is nothing.
    status, upto = await alice.call("GET", f"{V3}/rooms/{quote(room_id)}/messages?dir=b&limit=2")
    assert [e["event_id"] for e in upto["chunk"]] == [fix, reply]
    status, body = await alice.relations(room_id, root, **{"from": upto["end"]})
    assert (status, body["chunk"]) == (200, [])
    status, body = await alice.relations(room_id, root, **{"from": page["start"]})
    assert [e["event_id"] for e in body["chunk"]] == [fix, reply]


async def test_thread_summary_leaves_out_ignored_users(room):
    room_id, alice, bob, carol = room
    root = await alice.send(room_id, text("root"))
    await alice.send(room_id, in_thread(root, "from alice"))
    await bob.send(room_id, in_thread(root, "from bob"))
    only_bob = await alice.send(room_id, text("another root"))
    await bob.send(room_id, in_thread(only_bob, "bob again"))
    status, _ = await carol.call(
        "PUT",
        f"{V3}/user/{quote(carol.user_id)}/account_data/m.ignored_user_list",
        {"ignored_users": {bob.user_id: {}}},
    )
    assert status == 200

    thread = (await carol.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert (thread["count"], thread["latest_event"]["content"]["body"]) == (1, "from alice")
    assert "m.relations" not in (await carol.event(room_id, only_bob))["unsigned"]
    # Others still see bob's replies.
    thread = (await alice.event(room_id, root))["unsigned"]["m.relations"]["m.thread"]
    assert (thread["count"], thread["latest_event"]["content"]["body"]) == (2, "from bob")
