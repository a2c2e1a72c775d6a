"""The admin API's exports: background jobs whose status is kept in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.admin.conftest import Admin, make_admin
from tests.conftest import RunningServer
from tests.export.checks import check_room_export, check_user_export
from tests.export.scenario import build


async def wait_for_end(admin: Admin, export_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status, body = await admin.call("GET", f"/v1/export/{export_id}")
        assert status == 200, body
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def test_export_jobs_run_to_done(hs: RunningServer, tmp_path: Path) -> None:
    s = await build(hs)
    admin = await make_admin(hs)

    status, body = await admin.call("POST", f"/v1/export/user/{s.alice}", {})
    assert status == 200, body
    job = await wait_for_end(admin, body["export_id"])
    assert job["status"] == "done", job
    assert (job["kind"], job["target"], job["include_redacted"]) == ("user", s.alice, False)
    assert job["requested_by"] == admin.user_id
    assert job["progress"]["done"] == job["progress"]["total"] > 0
    out = Path(job["output_path"])
    # Under the configured export directory, in the data directory.
    assert out.parent == (tmp_path / "exports").resolve()
    await check_user_export(hs, out, s)

    status, body = await admin.call(
        "POST", f"/v1/export/room/{s.main_room}", {"include_redacted": True}
    )
    assert status == 200, body
    job = await wait_for_end(admin, body["export_id"])
    assert job["status"] == "done", job
    await check_room_export(hs, Path(job["output_path"]), s, include_redacted=True)

    # Each start is in the audit log.
    status, audit = await admin.call("GET", "/v1/audit_log?dir=f")
    assert status == 200
    assert [(e["action"], e["target"], e["status"]) for e in audit["entries"]] == [
        ("export.user", s.alice, 200),
        ("export.room", s.main_room, 200),
    ]


async def test_refusals(hs: RunningServer) -> None:
    s = await build(hs)
    admin = await make_admin(hs)

    # Not an admin: 403, and no job.
    for path in (f"/v1/export/user/{s.alice}", f"/v1/export/room/{s.main_room}"):
        status, body = await hs.request(
            "POST", "/_synapse/admin" + path, token=s.alice_token, json={}
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert await hs.pool.fetchval("SELECT count(*) FROM export_jobs") == 0

    bad = [
        (f"/v1/export/user/{s.alice}", {"include_redacted": "yes"}),
        ("/v1/export/user/@someone:elsewhere.example", {}),
        ("/v1/export/room/not-a-room", {}),
    ]
    for path, body_in in bad:
        status, body = await admin.call("POST", path, body_in)
        assert status == 400, (path, body)
        assert body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), body

    for path in ("/v1/export/user/@nobody:localhost", "/v1/export/room/!nothing:localhost"):
        status, body = await admin.call("POST", path, {})
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), body
    assert await hs.pool.fetchval("SELECT count(*) FROM export_jobs") == 0

    status, body = await admin.call("GET", "/v1/export/0123456789abcdef01234567")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await hs.request(
        "GET", "/_synapse/admin/v1/export/0123456789abcdef01234567", token=s.alice_token
    )
    assert status == 403


async def test_a_restart_reports_cut_short_jobs_as_interrupted(server_factory: Any) -> None:
    first = await server_factory()
    admin = await make_admin(first)
    # A job the previous process was running when it died.
    await first.pool.execute(
        """INSERT INTO export_jobs (export_id, kind, target, include_redacted, requested_by,
               status, output_path, started_ts, progress, total)
           VALUES ('cutshort', 'room', '!r:localhost', FALSE, $1, 'running', '/x', 1, 5, 10)""",
        admin.user_id,
    )
    second = await server_factory()
    status, body = await second.request(
        "GET", "/_synapse/admin/v1/export/cutshort", token=admin.token
    )
    assert status == 200, body
    assert body["status"] == "interrupted"
    assert body["progress"] == {"done": 5, "total": 10}
    assert body["finished_ts"] is not None
