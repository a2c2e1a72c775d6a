"""Push evaluation follows the room's members and power levels as they change.

The notifier derives a room's facts after a membership or power levels
change from those before it (no read of the whole member list per join);
these check, through /notifications, that what it derives is what a user
sees: the one-to-one rule follows the member count, joiners are notified and
leavers no longer, and @room follows a change of `notifications.room`.
"""

from __future__ import annotations

from typing import Any

V3 = "/_matrix/client/v3"


async def _user(hs: Any, name: str) -> tuple[str, str]:
    body = await hs.register(name)
    return body["user_id"], body["access_token"]


async def _call(hs: Any, method: str, path: str, token: str, body: Any = None) -> Any:
    status, data = await hs.request(method, f"{V3}{path}", token=token, json=body)
    assert status == 200, data
    return data


async def _send(hs: Any, token: str, room: str, body: str, **content: Any) -> str:
    sent = await _call(
        hs,
        "POST",
        f"/rooms/{room}/send/m.room.message",
        token,
        {"msgtype": "m.text", "body": body, **content},
    )
    return sent["event_id"]


async def _notifications(hs: Any, token: str) -> dict[str, dict[str, Any]]:
    """The user's notifications by event id."""
    data = await _call(hs, "GET", "/notifications?limit=100", token)
    return {n["event"]["event_id"]: n for n in data["notifications"]}


def _has_sound(notification: dict[str, Any]) -> bool:
    return any(
        isinstance(a, dict) and a.get("set_tweak") == "sound" for a in notification["actions"]
    )


async def test_one_to_one_rule_and_members_follow_joins_and_leaves(hs):
    alice, a_token = await _user(hs, "alice")
    _, b_token = await _user(hs, "bob")
    _, c_token = await _user(hs, "carol")
    room = (await _call(hs, "POST", "/createRoom", a_token, {"preset": "public_chat"}))["room_id"]
    await _call(hs, "POST", f"/rooms/{room}/join", b_token, {})
    two = await _send(hs, a_token, room, "two of us")

    await _call(hs, "POST", f"/rooms/{room}/join", c_token, {})
    three = await _send(hs, a_token, room, "three of us")

    await _call(hs, "POST", f"/rooms/{room}/leave", c_token, {})
    two_again = await _send(hs, a_token, room, "two again")

    bob = await _notifications(hs, b_token)
    # Two members: the one-to-one rule (with a sound); three: the plain message rule.
    assert _has_sound(bob[two])
    assert not _has_sound(bob[three])
    assert _has_sound(bob[two_again])

    carol = await _notifications(hs, c_token)
    assert three in carol
    assert two not in carol and two_again not in carol
    alice_own = await _notifications(hs, a_token)
    assert not {two, three, two_again} & set(alice_own)
    assert alice.startswith("@alice:")


async def test_many_joins_then_each_member_notified_once(hs):
    _, a_token = await _user(hs, "owner")
    room = (await _call(hs, "POST", "/createRoom", a_token, {"preset": "public_chat"}))["room_id"]
    tokens = []
    for i in range(6):
        _, token = await _user(hs, f"member{i}")
        await _call(hs, "POST", f"/rooms/{room}/join", token, {})
        tokens.append(token)
    # One left and came back, one left for good.
    await _call(hs, "POST", f"/rooms/{room}/leave", tokens[0], {})
    await _call(hs, "POST", f"/rooms/{room}/join", tokens[0], {})
    await _call(hs, "POST", f"/rooms/{room}/leave", tokens[1], {})
    event_id = await _send(hs, a_token, room, "hello all")

    for i, token in enumerate(tokens):
        got = await _notifications(hs, token)
        assert (event_id in got) == (i != 1), i
        if i != 1:
            # Seven members: not a one-to-one room.
            assert not _has_sound(got[event_id])


async def test_room_mention_follows_a_power_levels_change(hs):
    _, a_token = await _user(hs, "admin")
    _, b_token = await _user(hs, "speaker")
    room = (await _call(hs, "POST", "/createRoom", a_token, {"preset": "public_chat"}))["room_id"]
    await _call(hs, "POST", f"/rooms/{room}/join", b_token, {})
    mention = {"m.mentions": {"room": True}}
    before = await _send(hs, b_token, room, "@room hello", **mention)

    levels = await _call(hs, "GET", f"/rooms/{room}/state/m.room.power_levels/", a_token)
    levels["notifications"] = {"room": 0}
    await _call(hs, "PUT", f"/rooms/{room}/state/m.room.power_levels/", a_token, levels)
    after = await _send(hs, b_token, room, "@room again", **mention)

    admin = await _notifications(hs, a_token)
    # Default `notifications.room` is 50: the speaker (0) may not, then may.
    assert not admin[before]["actions"] or not any(
        isinstance(a, dict) and a.get("set_tweak") == "highlight" and a.get("value", True)
        for a in admin[before]["actions"]
    )
    assert any(
        isinstance(a, dict) and a.get("set_tweak") == "highlight" and a.get("value", True)
        for a in admin[after]["actions"]
    )
