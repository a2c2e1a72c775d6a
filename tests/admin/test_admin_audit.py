"""The audit log: every change made through the admin API, once, with who,
when, from where, what, on what, with which parameters and how it ended."""

from __future__ import annotations

import time

import asyncpg
import pytest


async def test_each_change_is_logged_once_with_its_fields(admin):
    before = int(time.time() * 1000)
    status, _ = await admin.call(
        "PUT", "/v2/users/@target:localhost", {"password": "hunter2", "displayname": "T"}
    )
    assert status == 201
    status, _ = await admin.call("POST", "/v1/deactivate/@target:localhost", {"erase": False})
    assert status == 200
    status, _ = await admin.call("POST", "/v1/deactivate/@ghost:localhost", {})
    assert status == 404
    status, _ = await admin.call("POST", "/v1/registration_tokens/new", {"token": "abc"})
    assert status == 200
    # Reads are not logged.
    await admin.call("GET", "/v2/users")
    after = int(time.time() * 1000)

    status, body = await admin.call("GET", "/v1/audit_log?dir=f")
    assert status == 200
    entries = body["entries"]
    assert [(e["action"], e["target"], e["status"], e["errcode"]) for e in entries] == [
        ("user.create_or_modify", "@target:localhost", 201, None),
        ("user.deactivate", "@target:localhost", 200, None),
        ("user.deactivate", "@ghost:localhost", 404, "M_NOT_FOUND"),
        ("token.create", "abc", 200, None),
    ]
    first = entries[0]
    assert first["admin_user_id"] == admin.user_id
    assert first["ip"] == "127.0.0.1"
    assert before <= first["ts"] <= after
    assert (first["method"], first["path"]) == ("PUT", "/_synapse/admin/v2/users/@target:localhost")
    # Parameters are kept, the password is not.
    assert first["params"] == {"body": {"displayname": "T"}}
    raw = await admin.hs.pool.fetchval("SELECT string_agg(params::text, ' ') FROM admin_audit_log")
    assert "hunter2" not in raw
    assert entries[1]["params"] == {"body": {"erase": False}}


async def test_filters_and_paging(admin):
    for name in ("u1", "u2", "u3"):
        await admin.call("PUT", f"/v2/users/@{name}:localhost", {"password": "pw"})
    await admin.call("POST", "/v1/users/@u2:localhost/shadow_ban")

    status, body = await admin.call("GET", "/v1/audit_log?limit=2")
    assert [e["target"] for e in body["entries"]] == ["@u2:localhost", "@u3:localhost"]
    assert (body["total"], body["next_token"]) == (4, "2")
    status, body = await admin.call("GET", "/v1/audit_log?limit=2&from=2")
    assert [e["target"] for e in body["entries"]] == ["@u2:localhost", "@u1:localhost"]
    assert "next_token" not in body

    status, body = await admin.call("GET", "/v1/audit_log?target=@u2:localhost")
    assert [e["action"] for e in body["entries"]] == ["user.shadow_ban", "user.create_or_modify"]
    status, body = await admin.call("GET", "/v1/audit_log?action=user.shadow_ban")
    assert body["total"] == 1
    status, body = await admin.call("GET", f"/v1/audit_log?admin={admin.user_id}")
    assert body["total"] == 4
    status, body = await admin.call("GET", "/v1/audit_log?admin=@other:localhost")
    assert body["total"] == 0
    status, body = await admin.call("GET", "/v1/audit_log?from_ts=0&to_ts=1")
    assert body["total"] == 0


async def test_entries_cannot_be_changed_or_deleted(admin):
    await admin.call("POST", "/v1/registration_tokens/new", {"token": "t"})
    pool = admin.hs.pool
    for statement in (
        "UPDATE admin_audit_log SET action = 'nothing'",
        "DELETE FROM admin_audit_log",
        "TRUNCATE admin_audit_log",
    ):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await pool.execute(statement)
    assert await pool.fetchval("SELECT action FROM admin_audit_log") == "token.create"
    # And the API has no route that changes the log.
    for method in ("PUT", "POST", "DELETE"):
        status, _ = await admin.call(method, "/v1/audit_log", {})
        assert status == 405


async def test_shared_secret_registration_is_logged_without_secrets(admin):
    from tests.admin.test_admin_shared_secret import mac_by_hand, nonce

    hs = admin.hs
    n = await nonce(hs)
    mac = mac_by_hand(n, "newbie", "pw-newbie", False)
    status, _ = await hs.request(
        "POST",
        "/_synapse/admin/v1/register",
        json={"nonce": n, "username": "newbie", "password": "pw-newbie", "mac": mac},
    )
    assert status == 200
    status, body = await admin.call("GET", "/v1/audit_log")
    (entry,) = body["entries"]
    assert (entry["action"], entry["admin_user_id"], entry["target"]) == (
        "user.register_shared_secret",
        None,
        "@newbie:localhost",
    )
    assert entry["params"] == {"body": {"nonce": n, "username": "newbie"}}
