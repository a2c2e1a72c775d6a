"""Thread subscriptions (MSC4306) over real HTTP: subscribe, unsubscribe and
look up; an automatic subscription's cause event and its conflict with an
earlier unsubscription; the changes in sliding sync's `thread_subscriptions`
extension and the paging endpoint of MSC4308; bad input refused, changing
nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.sliding_sync.helpers import User, all_rooms, new_user

MSC4306 = "/_matrix/client/unstable/io.element.msc4306"
PAGE = "/_matrix/client/unstable/io.element.msc4308/thread_subscriptions"
V3 = "/_matrix/client/v3"


def sub_path(room_id: str, root: str) -> str:
    return f"{MSC4306}/rooms/{quote(room_id)}/thread/{quote(root)}/subscription"


async def reply(user: User, room_id: str, root: str, text: str) -> str:
    return str(
        (
            await user.call(
                "PUT",
                f"{V3}/rooms/{quote(room_id)}/send/m.room.message/{quote(text)}",
                {
                    "msgtype": "m.text",
                    "body": text,
                    "m.relates_to": {"rel_type": "m.thread", "event_id": root},
                },
            )
        )["event_id"]
    )


async def room_with_thread(hs: Any) -> tuple[User, User, str, str]:
    alice = await new_user(hs, "alice")
    bob = await new_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    root = await alice.send(room_id, "a thread root")
    return alice, bob, room_id, root


async def status_of(hs: Any, user: User, method: str, path: str, body: Any = None) -> tuple:
    status, result = await hs.request(method, path, token=user.token, json=body)
    return status, (result or {}).get("errcode")


async def test_subscribe_get_unsubscribe(hs: Any) -> None:
    alice, bob, room_id, root = await room_with_thread(hs)
    path = sub_path(room_id, root)
    assert await status_of(hs, bob, "GET", path) == (404, "M_NOT_FOUND")

    assert await bob.call("PUT", path, {}) == {}
    assert await bob.call("GET", path) == {"automatic": False}
    # Only bob is subscribed.
    assert await status_of(hs, alice, "GET", path) == (404, "M_NOT_FOUND")

    assert await bob.call("DELETE", path) == {}
    assert await status_of(hs, bob, "GET", path) == (404, "M_NOT_FOUND")
    # Unsubscribing again is fine (idempotent).
    assert await bob.call("DELETE", path) == {}
    assert (await bob.call("GET", "/_matrix/client/versions"))["unstable_features"][
        "org.matrix.msc4306"
    ]


async def test_automatic_subscription_and_manual_precedence(hs: Any) -> None:
    alice, bob, room_id, root = await room_with_thread(hs)
    path = sub_path(room_id, root)
    mention = await reply(alice, room_id, root, "hey bob")

    assert await bob.call("PUT", path, {"automatic": mention}) == {}
    assert await bob.call("GET", path) == {"automatic": True}
    # A manual subscription takes precedence over the automatic one...
    assert await bob.call("PUT", path, {}) == {}
    assert await bob.call("GET", path) == {"automatic": False}
    # ...and a later automatic one does not downgrade it.
    assert await bob.call("PUT", path, {"automatic": mention}) == {}
    assert await bob.call("GET", path) == {"automatic": False}


async def test_automatic_subscription_after_unsubscription_conflicts(hs: Any) -> None:
    alice, bob, room_id, root = await room_with_thread(hs)
    path = sub_path(room_id, root)
    earlier = await reply(alice, room_id, root, "first mention")
    await bob.call("PUT", path, {"automatic": earlier})
    await bob.call("DELETE", path)

    # A dormant device re-applying the old mention is refused...
    status, errcode = await status_of(hs, bob, "PUT", path, {"automatic": earlier})
    assert (status, errcode) == (409, "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION")
    assert await status_of(hs, bob, "GET", path) == (404, "M_NOT_FOUND")
    # ...but a new mention after the unsubscription subscribes again.
    later = await reply(alice, room_id, root, "second mention")
    assert await bob.call("PUT", path, {"automatic": later}) == {}
    assert await bob.call("GET", path) == {"automatic": True}


async def test_bad_input_is_refused_and_changes_nothing(hs: Any) -> None:
    alice, bob, room_id, root = await room_with_thread(hs)
    path = sub_path(room_id, root)
    other_root = await alice.send(room_id, "another root")
    elsewhere = await reply(alice, room_id, other_root, "in the other thread")
    outside = await alice.send(room_id, "not in a thread")

    cases = [
        ({"automatic": elsewhere}, path, (400, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD")),
        ({"automatic": outside}, path, (400, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD")),
        ({"automatic": "$nope"}, path, (404, "M_NOT_FOUND")),
        ({"automatic": True}, path, (400, "M_BAD_JSON")),
        ({"automatic": "not-an-event-id"}, path, (400, "M_BAD_JSON")),
        ({}, sub_path(room_id, "$missing"), (404, "M_NOT_FOUND")),
        ({}, sub_path(room_id, "no-dollar"), (400, "M_INVALID_PARAM")),
        ({}, sub_path("not-a-room", root), (400, "M_INVALID_PARAM")),
    ]
    for body, target, expected in cases:
        assert await status_of(hs, bob, "PUT", target, body) == expected, body
    status, _ = await hs.request("PUT", path, json={})
    assert status == 401
    status, body = await hs.request(
        "PUT", path, token=bob.token, data=b"[]", headers={"Content-Type": "application/json"}
    )
    assert status == 400

    # A thread in a room the user cannot see is not found.
    private = await alice.create_room()
    secret = await alice.send(private, "private root")
    assert await status_of(hs, bob, "PUT", sub_path(private, secret), {}) == (404, "M_NOT_FOUND")
    assert await status_of(hs, bob, "DELETE", sub_path(private, secret)) == (404, "M_NOT_FOUND")

    # Nothing was subscribed.
    assert await status_of(hs, bob, "GET", path) == (404, "M_NOT_FOUND")
    assert await bob.call("GET", f"{PAGE}?dir=b") == {}


async def test_sliding_sync_extension_and_paging(hs: Any) -> None:
    alice, bob, room_id, root = await room_with_thread(hs)
    roots = [root] + [await alice.send(room_id, f"root {i}") for i in range(3)]
    request = {**all_rooms(), "extensions": {"thread_subscriptions": {"enabled": True}}}
    first = await bob.sync_ok(request)
    assert "thread_subscriptions" not in first.get("extensions", {})

    for r in roots:
        await bob.call("PUT", sub_path(room_id, r), {})
    await bob.call("DELETE", sub_path(room_id, roots[0]))

    # Only the latest 2 changes, and a token for the rest.
    limited = {**all_rooms(), "extensions": {"thread_subscriptions": {"enabled": True, "limit": 2}}}
    second = await bob.sync_ok(limited, pos=first["pos"])
    part = second["extensions"]["thread_subscriptions"]
    assert set(part["subscribed"][room_id]) == {roots[3]}
    assert part["subscribed"][room_id][roots[3]]["automatic"] is False
    assert set(part["unsubscribed"][room_id]) == {roots[0]}
    assert (
        part["unsubscribed"][room_id][roots[0]]["bump_stamp"]
        > (part["subscribed"][room_id][roots[3]]["bump_stamp"])
    )

    # The companion endpoint pages back through what was left out.
    page = await bob.call(
        "GET", f"{PAGE}?dir=b&limit=1&from={part['prev_batch']}&to={first['pos']}"
    )
    assert set(page["subscribed"][room_id]) == {roots[2]}
    rest = await bob.call("GET", f"{PAGE}?dir=b&limit=10&from={page['end']}&to={first['pos']}")
    # roots[0]'s subscription was replaced by its unsubscription, already sent.
    assert set(rest["subscribed"][room_id]) == {roots[1]}
    assert "end" not in rest

    # Nothing new: the extension stays quiet.
    third = await bob.sync_ok(request, pos=second["pos"])
    assert "thread_subscriptions" not in third.get("extensions", {})

    # The whole history, newest first, without tokens.
    everything = await bob.call("GET", f"{PAGE}?dir=b")
    assert set(everything["subscribed"][room_id]) == set(roots[1:])
    assert set(everything["unsubscribed"][room_id]) == {roots[0]}


async def test_paging_bad_input(hs: Any) -> None:
    bob = await new_user(hs, "bob")
    for query, expected in [
        ("", (400, "M_MISSING_PARAM")),
        ("?dir=f", (400, "M_INVALID_PARAM")),
        ("?dir=b&limit=0", (400, "M_INVALID_PARAM")),
        ("?dir=b&limit=x", (400, "M_INVALID_PARAM")),
        ("?dir=b&from=garbage", (400, "M_INVALID_PARAM")),
        ("?dir=b&to=garbage", (400, "M_INVALID_PARAM")),
    ]:
        assert await status_of(hs, bob, "GET", PAGE + query) == expected, query
    status, body = await bob.sliding(
        {**all_rooms(), "extensions": {"thread_subscriptions": {"enabled": True, "limit": 0}}}
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def notified_events(hs: Any, user: User) -> list[str]:
    result = await user.call("GET", f"{V3}/notifications")
    return [n["event"]["event_id"] for n in result["notifications"]]


async def test_push_rules_follow_subscriptions(server_factory: Any) -> None:
    hs = await server_factory(push={"thread_subscription_rules": True})
    alice, bob, room_id, root = await room_with_thread(hs)
    rules = (await bob.call("GET", f"{V3}/pushrules/"))["global"]
    assert rules["override"][-1]["rule_id"] == ".io.element.msc4306.rule.unsubscribed_thread"
    assert rules["underride"][0]["rule_id"] == ".io.element.msc4306.rule.subscribed_thread"

    # Not subscribed: a thread reply does not notify; a mention does (the
    # texts avoid "bob": his display name would be a mention too).
    quiet = await reply(alice, room_id, root, "nothing for him")
    mention = await user_mention(alice, room_id, root, bob.user_id)
    # Subscribed: every reply notifies.
    await bob.call("PUT", sub_path(room_id, root), {})
    loud = await reply(alice, room_id, root, "he hears this")
    main = await alice.send(room_id, "the main timeline is not a thread")
    # Unsubscribed again: quiet again.
    await bob.call("DELETE", sub_path(room_id, root))
    after = await reply(alice, room_id, root, "he left the thread")

    notified = await notified_events(hs, bob)
    assert mention in notified
    assert loud in notified
    assert quiet not in notified
    assert main in notified
    assert after not in notified


async def test_push_rules_off_by_default(hs: Any) -> None:
    alice, bob, room_id, root = await room_with_thread(hs)
    rules = (await bob.call("GET", f"{V3}/pushrules/"))["global"]
    assert all("msc4306" not in r["rule_id"] for k in rules.values() for r in k)
    plain = await reply(alice, room_id, root, "threads notify as the room does")
    assert plain in await notified_events(hs, bob)


async def user_mention(user: User, room_id: str, root: str, target: str) -> str:
    result = await user.call(
        "PUT",
        f"{V3}/rooms/{quote(room_id)}/send/m.room.message/mention-{quote(target)}",
        {
            "msgtype": "m.text",
            "body": "hello",
            "m.mentions": {"user_ids": [target]},
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    return str(result["event_id"])
