"""Reporting users (v1.14): the answer never tells whether the user exists,
reports of local accounts reach the admins' /_synapse/admin/v1/user_reports,
bad input and too many reports are refused and store nothing."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import make_admin
from tests.conftest import rate_limits_on

V3 = "/_matrix/client/v3"
ADMIN = "/_synapse/admin/v1"


async def _report(hs: Any, token: str, target: str, body: Any) -> tuple[int, Any]:
    return await hs.request("POST", f"{V3}/users/{target}/report", token=token, json=body)


async def test_reports_reach_the_admins(hs):
    admin = await make_admin(hs)
    alice = (await hs.register("alice"))["access_token"]
    await hs.register("mallory")
    for target, reason in (
        ("@mallory:localhost", "spam in every room"),
        ("@nobody:localhost", "does not exist"),
        ("@someone:elsewhere.example", "not ours"),
        ("@mallory:localhost", ""),
    ):
        # The same answer whether or not the user exists here.
        assert await _report(hs, alice, target, {"reason": reason}) == (200, {})

    status, body = await hs.request("GET", f"{ADMIN}/user_reports", token=admin.token)
    assert status == 200 and body["total"] == 2
    reports = body["user_reports"]
    assert [(r["target_user_id"], r["user_id"], r["reason"]) for r in reports] == [
        ("@mallory:localhost", "@alice:localhost", ""),
        ("@mallory:localhost", "@alice:localhost", "spam in every room"),
    ]
    first = reports[1]
    assert set(first) == {"id", "received_ts", "target_user_id", "user_id", "reason"}
    status, one = await hs.request("GET", f"{ADMIN}/user_reports/{first['id']}", token=admin.token)
    assert (status, one) == (200, first)

    # Filters and paging, as Synapse's.
    status, body = await hs.request(
        "GET", f"{ADMIN}/user_reports?dir=f&limit=1&target_user_id=mallory", token=admin.token
    )
    assert body["total"] == 2 and body["next_token"] == 1
    assert body["user_reports"] == [first]
    status, body = await hs.request("GET", f"{ADMIN}/user_reports?user_id=%25", token=admin.token)
    assert body == {"user_reports": [], "total": 0}

    status, _ = await hs.request("DELETE", f"{ADMIN}/user_reports/{first['id']}", token=admin.token)
    assert status == 200
    status, body = await hs.request("GET", f"{ADMIN}/user_reports/{first['id']}", token=admin.token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await hs.request("GET", f"{ADMIN}/user_reports/x", token=admin.token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # Not for other users.
    status, body = await hs.request("GET", f"{ADMIN}/user_reports", token=alice)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_bad_reports_store_nothing(hs):
    alice = (await hs.register("alice"))["access_token"]
    await hs.register("mallory")
    cases = [
        ({}, 400, "M_MISSING_PARAM"),
        ({"reason": 5}, 400, "M_BAD_JSON"),
        ({"reason": None}, 400, "M_BAD_JSON"),
        ({"reason": "x" * 1001}, 400, "M_BAD_JSON"),
        ([], 400, "M_BAD_JSON"),
    ]
    for body_, want_status, errcode in cases:
        status, body = await _report(hs, alice, "@mallory:localhost", body_)
        assert (status, body["errcode"]) == (want_status, errcode), body_
    status, body = await _report(hs, alice, "not-a-user", {"reason": "x"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await hs.request(
        "POST", f"{V3}/users/@mallory:localhost/report", json={"reason": "x"}
    )
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    assert await hs.pool.fetchval("SELECT count(*) FROM user_reports") == 0


async def test_reports_are_rate_limited(server_factory):
    hs = await server_factory(**rate_limits_on(reports={"per_second": 0.1, "burst_count": 2}))
    alice = (await hs.register("alice"))["access_token"]
    bob = (await hs.register("bob"))["access_token"]
    await hs.register("mallory")
    for _ in range(2):
        assert await _report(hs, alice, "@mallory:localhost", {"reason": "x"}) == (200, {})
    # Also for users that do not exist: the limit tells nothing either.
    status, body = await _report(hs, alice, "@nobody:localhost", {"reason": "x"})
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] > 0
    # Per reporter: Bob may still report.
    assert await _report(hs, bob, "@mallory:localhost", {"reason": "y"}) == (200, {})
    assert await hs.pool.fetchval("SELECT count(*) FROM user_reports") == 3
