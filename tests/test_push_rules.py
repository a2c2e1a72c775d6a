"""The push rules API over HTTP: reading, ordering, enabling, actions, errors."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.push.default_rules import default_push_rules

BASE = "/_matrix/client/v3/pushrules"
KINDS = ["override", "content", "room", "sender", "underride"]


@pytest.fixture
async def alice(hs) -> str:
    return (await hs.register("alice"))["access_token"]


async def ruleset(hs, token: str) -> dict[str, Any]:
    status, body = await hs.request("GET", f"{BASE}/", token=token)
    assert status == 200, body
    return body["global"]


def ids(rules: list[dict[str, Any]]) -> list[str]:
    return [r["rule_id"] for r in rules]


async def put(hs, token: str, path: str, body: Any) -> tuple[int, Any]:
    return await hs.request("PUT", f"{BASE}/global/{path}", token=token, json=body)


OVERRIDE_BODY = {
    "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "lunch"}],
    "actions": ["notify"],
}


async def test_new_user_gets_the_defaults(hs, alice):
    expected = default_push_rules("@alice:localhost", legacy_mentions=True)
    status, body = await hs.request("GET", f"{BASE}/", token=alice)
    assert (status, body) == (200, expected)
    status, body = await hs.request("GET", f"{BASE}/global/", token=alice)
    assert (status, body) == (200, expected["global"])
    status, body = await hs.request("GET", f"{BASE}/global/underride/", token=alice)
    assert (status, body) == (200, expected["global"]["underride"])
    status, body = await hs.request("GET", f"{BASE}/global/override/.m.rule.master", token=alice)
    assert (status, body) == (200, expected["global"]["override"][0])
    status, body = await hs.request(
        "GET", f"{BASE}/global/override/.m.rule.master/enabled", token=alice
    )
    assert (status, body) == (200, {"enabled": False})
    status, body = await hs.request(
        "GET", f"{BASE}/global/underride/.m.rule.message/actions", token=alice
    )
    assert (status, body) == (200, {"actions": ["notify"]})
    status, _ = await hs.request("GET", f"{BASE}/", token=None)
    assert status == 401


async def test_new_rules_go_first_among_user_rules_after_master(hs, alice):
    assert (await put(hs, alice, "override/one", OVERRIDE_BODY)) == (200, {})
    assert (await put(hs, alice, "override/two", OVERRIDE_BODY)) == (200, {})
    override = ids((await ruleset(hs, alice))["override"])
    assert override[:3] == [".m.rule.master", "two", "one"]
    assert override[3] == ".m.rule.suppress_notices"
    status, rule = await hs.request("GET", f"{BASE}/global/override/one", token=alice)
    assert status == 200
    assert rule == {"rule_id": "one", "default": False, "enabled": True, **OVERRIDE_BODY}


async def test_before_and_after_place_the_rule(hs, alice):
    body = {"actions": ["notify"], "conditions": []}
    for name in ("a", "b", "c"):
        assert (await put(hs, alice, f"underride/{name}", body))[0] == 200
    # Now c, b, a (newest first).
    assert (await put(hs, alice, "underride/d?before=a", body))[0] == 200
    assert ids((await ruleset(hs, alice))["underride"])[:4] == ["c", "b", "d", "a"]
    assert (await put(hs, alice, "underride/e?after=c", body))[0] == 200
    assert ids((await ruleset(hs, alice))["underride"])[:5] == ["c", "e", "b", "d", "a"]
    # Moving an existing rule; with both, `before` decides.
    assert (await put(hs, alice, "underride/a?before=c&after=d", body))[0] == 200
    underride = ids((await ruleset(hs, alice))["underride"])
    assert underride[:5] == ["a", "c", "e", "b", "d"]
    # Defaults stay after the user's underride rules.
    assert underride[5:] == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]


async def test_placement_errors_change_nothing(hs, alice):
    body = {"actions": ["notify"], "conditions": []}
    assert (await put(hs, alice, "override/mine", body))[0] == 200
    before = await ruleset(hs, alice)
    cases = [
        ("override/x?before=nope", 400, "M_UNKNOWN"),
        ("override/x?after=nope", 400, "M_UNKNOWN"),
        # Rules are placed relative to user rules of the same kind only.
        ("override/x?before=.m.rule.suppress_notices", 400, "M_UNKNOWN"),
        ("underride/x?after=mine", 400, "M_UNKNOWN"),
        ("override/mine?before=mine", 400, "M_INVALID_PARAM"),
    ]
    for path, status, errcode in cases:
        got_status, got = await put(hs, alice, path, body)
        assert (got_status, got["errcode"]) == (status, errcode), path
    assert await ruleset(hs, alice) == before


@pytest.mark.parametrize(
    ("path", "body", "errcode"),
    [
        ("override/.mine", {"actions": [], "conditions": []}, "M_INVALID_PARAM"),
        ("override/.m.rule.master", {"actions": [], "conditions": []}, "M_INVALID_PARAM"),
        ("override/a\\b", {"actions": [], "conditions": []}, "M_INVALID_PARAM"),
        ("override/x", {"conditions": []}, "M_MISSING_PARAM"),
        ("override/x", {"actions": "notify", "conditions": []}, "M_BAD_JSON"),
        ("override/x", {"actions": ["shout"], "conditions": []}, "M_BAD_JSON"),
        ("override/x", {"actions": [{"value": 1}], "conditions": []}, "M_BAD_JSON"),
        ("override/x", {"actions": [], "conditions": {"kind": "x"}}, "M_BAD_JSON"),
        ("override/x", {"actions": [], "conditions": [{"key": "type"}]}, "M_BAD_JSON"),
        ("content/x", {"actions": []}, "M_BAD_JSON"),
        ("content/x", {"actions": [], "pattern": 5}, "M_BAD_JSON"),
        ("everything/x", {"actions": []}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_rules_are_refused(hs, alice, path, body, errcode):
    before = await ruleset(hs, alice)
    status, got = await put(hs, alice, path, body)
    assert (status, got["errcode"]) == (400, errcode)
    assert await ruleset(hs, alice) == before


async def test_room_sender_and_content_rules_have_their_shapes(hs, alice):
    room = "!abc:localhost"
    assert (await put(hs, alice, f"room/{room}", {"actions": []}))[0] == 200
    assert (await put(hs, alice, "sender/@bob:localhost", {"actions": ["notify"]}))[0] == 200
    assert (await put(hs, alice, "content/cake", {"pattern": "cake*lie", "actions": []}))[0] == 200
    rules = await ruleset(hs, alice)
    assert rules["room"] == [{"rule_id": room, "default": False, "enabled": True, "actions": []}]
    assert rules["sender"] == [
        {"rule_id": "@bob:localhost", "default": False, "enabled": True, "actions": ["notify"]}
    ]
    assert rules["content"][0] == {
        "rule_id": "cake",
        "default": False,
        "enabled": True,
        "pattern": "cake*lie",
        "actions": [],
    }
    assert ids(rules["content"])[1:] == [".m.rule.contains_user_name"]


async def test_enabling_and_disabling(hs, alice):
    path = f"{BASE}/global/override/mine/enabled"
    assert (await put(hs, alice, "override/mine", OVERRIDE_BODY))[0] == 200
    status, _ = await hs.request("PUT", path, token=alice, json={"enabled": False})
    assert status == 200
    assert await hs.request("GET", path, token=alice) == (200, {"enabled": False})
    # Replacing the rule keeps it disabled, and in its place.
    assert (await put(hs, alice, "override/other", OVERRIDE_BODY))[0] == 200
    assert (await put(hs, alice, "override/mine", {**OVERRIDE_BODY, "actions": []}))[0] == 200
    rules = await ruleset(hs, alice)
    assert ids(rules["override"])[1:3] == ["other", "mine"]
    assert rules["override"][2]["enabled"] is False
    assert rules["override"][2]["actions"] == []
    # Server-default rules can be switched too.
    master = f"{BASE}/global/override/.m.rule.master/enabled"
    assert (await hs.request("PUT", master, token=alice, json={"enabled": True}))[0] == 200
    assert await hs.request("GET", master, token=alice) == (200, {"enabled": True})
    rules = await ruleset(hs, alice)
    assert rules["override"][0]["rule_id"] == ".m.rule.master"
    assert rules["override"][0]["enabled"] is True
    assert rules["override"][0]["default"] is True
    # Bad bodies and unknown rules.
    for body, errcode in (({}, "M_MISSING_PARAM"), ({"enabled": "no"}, "M_BAD_JSON")):
        status, got = await hs.request("PUT", path, token=alice, json=body)
        assert (status, got["errcode"]) == (400, errcode)
    for missing in (
        f"{BASE}/global/override/nope/enabled",
        f"{BASE}/global/override/.m.rule.nope/enabled",
        f"{BASE}/global/underride/.m.rule.master/enabled",
    ):
        status, got = await hs.request("PUT", missing, token=alice, json={"enabled": True})
        assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
        status, got = await hs.request("GET", missing, token=alice)
        assert (status, got["errcode"]) == (404, "M_NOT_FOUND")


async def test_actions_of_default_and_user_rules(hs, alice):
    path = f"{BASE}/global/underride/.m.rule.message/actions"
    new = ["notify", {"set_tweak": "sound", "value": "bing"}]
    assert (await hs.request("PUT", path, token=alice, json={"actions": new}))[0] == 200
    assert await hs.request("GET", path, token=alice) == (200, {"actions": new})
    status, rule = await hs.request("GET", f"{BASE}/global/underride/.m.rule.message", token=alice)
    assert rule["default"] is True and rule["actions"] == new
    assert (await put(hs, alice, "override/mine", OVERRIDE_BODY))[0] == 200
    mine = f"{BASE}/global/override/mine/actions"
    assert (await hs.request("PUT", mine, token=alice, json={"actions": []}))[0] == 200
    assert await hs.request("GET", mine, token=alice) == (200, {"actions": []})
    for body, errcode in (({}, "M_MISSING_PARAM"), ({"actions": ["loud"]}, "M_BAD_JSON")):
        status, got = await hs.request("PUT", mine, token=alice, json=body)
        assert (status, got["errcode"]) == (400, errcode)
    assert await hs.request("GET", mine, token=alice) == (200, {"actions": []})
    status, got = await hs.request(
        "PUT", f"{BASE}/global/override/nope/actions", token=alice, json={"actions": []}
    )
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")


async def test_delete(hs, alice):
    assert (await put(hs, alice, "override/mine", OVERRIDE_BODY))[0] == 200
    path = f"{BASE}/global/override/mine"
    assert await hs.request("DELETE", path, token=alice) == (200, {})
    status, got = await hs.request("GET", path, token=alice)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    status, got = await hs.request("DELETE", path, token=alice)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    # Server-default rules cannot be deleted.
    before = await ruleset(hs, alice)
    status, got = await hs.request(
        "DELETE", f"{BASE}/global/override/.m.rule.suppress_notices", token=alice
    )
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    assert await ruleset(hs, alice) == before
    assert ".m.rule.suppress_notices" in ids(before["override"])


async def test_unknown_kind_and_rule(hs, alice):
    status, got = await hs.request("GET", f"{BASE}/global/nonsense/", token=alice)
    assert (status, got["errcode"]) == (400, "M_INVALID_PARAM")
    status, got = await hs.request("GET", f"{BASE}/global/override/nope", token=alice)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")
    status, got = await hs.request("GET", f"{BASE}/global/underride/.m.rule.master", token=alice)
    assert (status, got["errcode"]) == (404, "M_NOT_FOUND")


async def test_rules_are_per_user(hs, alice):
    bob = (await hs.register("bob"))["access_token"]
    assert (await put(hs, alice, "override/mine", OVERRIDE_BODY))[0] == 200
    assert (
        await hs.request(
            "PUT",
            f"{BASE}/global/override/.m.rule.master/enabled",
            token=alice,
            json={"enabled": True},
        )
    )[0] == 200
    assert (
        await ruleset(hs, bob)
        == default_push_rules("@bob:localhost", legacy_mentions=True)["global"]
    )


def push_rules_event(sync: dict[str, Any]) -> dict[str, Any] | None:
    events = sync.get("account_data", {}).get("events", [])
    found = [e for e in events if e["type"] == "m.push_rules"]
    assert len(found) <= 1
    return found[0]["content"] if found else None


async def test_sync_carries_the_ruleset(hs, alice):
    status, initial = await hs.request("GET", "/_matrix/client/v3/sync", token=alice)
    assert status == 200
    assert push_rules_event(initial) == {"global": await ruleset(hs, alice)}
    # Nothing changed: an incremental sync does not repeat it.
    status, quiet = await hs.request(
        "GET", f"/_matrix/client/v3/sync?since={initial['next_batch']}", token=alice
    )
    assert push_rules_event(quiet) is None
    assert (await put(hs, alice, "override/mine", OVERRIDE_BODY))[0] == 200
    status, changed = await hs.request(
        "GET", f"/_matrix/client/v3/sync?since={quiet['next_batch']}&timeout=5000", token=alice
    )
    content = push_rules_event(changed)
    assert content is not None
    assert ids(content["global"]["override"])[:2] == [".m.rule.master", "mine"]
    # A later initial sync has the changed ruleset once.
    status, again = await hs.request("GET", "/_matrix/client/v3/sync", token=alice)
    assert push_rules_event(again) == content
    # A filter that leaves it out.
    flt = '{"account_data":{"not_types":["m.push_rules"]}}'
    status, filtered = await hs.request("GET", f"/_matrix/client/v3/sync?filter={flt}", token=alice)
    assert status == 200 and push_rules_event(filtered) is None


async def test_rules_are_stored(hs, alice, server_factory):
    body = {"actions": ["notify"], "conditions": []}
    assert (await put(hs, alice, "underride/a", body))[0] == 200
    assert (await put(hs, alice, "underride/b?after=a", body))[0] == 200
    disable = f"{BASE}/global/override/.m.rule.suppress_notices/enabled"
    assert (await hs.request("PUT", disable, token=alice, json={"enabled": False}))[0] == 200
    # A second server on the same database reads them back.
    other = await server_factory()
    assert await ruleset(other, alice) == await ruleset(hs, alice)
    assert ids((await ruleset(other, alice))["underride"])[:2] == ["a", "b"]
