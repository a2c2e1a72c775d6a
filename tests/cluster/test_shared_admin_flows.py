"""Admin flows whose requests may land on two processes of a deployment:
shared-secret registration (the nonce from one process, the registration
through another) and the status of background room deletes and history
purges (started on one process, asked of another). Two servers in cluster
mode on one database, over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
import yaml

from homeserver.erasure import redact_job
from storage.state import LOCK_ROOM
from tests.cluster.shared import create_room, join, ok, send
from tests.cluster.test_failover_processes import start_process
from tests.conftest import RunningServer
from tests.test_process import free_port, run_cli, wait_until_up

ADMIN = "/_synapse/admin"
V3 = "/_matrix/client/v3"
SECRET = "the-deployment's-registration-secret"


@pytest.fixture
async def two(server_factory: Any) -> tuple[RunningServer, RunningServer]:
    a = await server_factory(
        cluster={"enabled": True, "instance_name": "a"}, registration_shared_secret=SECRET
    )
    b = await server_factory(
        cluster={"enabled": True, "instance_name": "b"}, registration_shared_secret=SECRET
    )
    return a, b


def mac(nonce: str, user: str, password: str, admin: bool = False) -> str:
    """Computed here by hand, as an operator's script would."""
    message = b"\x00".join(
        [nonce.encode(), user.encode(), password.encode(), b"admin" if admin else b"notadmin"]
    )
    return hmac.new(SECRET.encode(), message, hashlib.sha1).hexdigest()


async def get_nonce(server: RunningServer) -> str:
    status, body = await server.request("GET", f"{ADMIN}/v1/register")
    assert status == 200, body
    return body["nonce"]


async def register(server: RunningServer, nonce: str, user: str, **changes: Any) -> Any:
    body = {"nonce": nonce, "username": user, "password": "pw-" + user, "admin": False}
    body["mac"] = mac(nonce, user, body["password"])
    body.update(changes)
    return await server.request("POST", f"{ADMIN}/v1/register", json=body)


async def available(server: RunningServer, user: str) -> bool:
    status, body = await server.request("GET", f"{V3}/register/available?username={user}")
    return status == 200 and body.get("available") is True


async def test_nonce_from_one_process_registers_through_the_other_once(two):
    """Behind a proxy, the GET of a nonce and the POST of the registration
    may reach two processes."""
    a, b = two
    nonce = await get_nonce(a)
    status, body = await register(b, nonce, "alice")
    assert status == 200, body
    assert body["user_id"] == "@alice:localhost"
    status, me = await a.request("GET", f"{V3}/account/whoami", token=body["access_token"])
    assert (status, me["user_id"]) == (200, "@alice:localhost")
    # Used up, on either process, even with a correct MAC for another user.
    for server in (a, b):
        status, body = await register(server, nonce, "mallory")
        assert (status, body["errcode"]) == (400, "M_UNKNOWN"), body
    assert await available(a, "mallory")

    # A wrong MAC uses the nonce up too.
    nonce = await get_nonce(b)
    status, body = await register(a, nonce, "bob", mac="0" * 40)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await register(b, nonce, "bob")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    assert await available(b, "bob")

    # Unknown and expired nonces are refused.
    status, body = await register(b, "f" * 64, "carol")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    nonce = await get_nonce(a)
    # A minute passes (nonces live one minute).
    await a.pool.execute(
        "UPDATE shared_secret_nonces SET expires_ts = expires_ts - 61000 WHERE nonce = $1", nonce
    )
    status, body = await register(b, nonce, "carol")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    assert await available(a, "carol")
    # Expired nonces are cleaned up when the next one is issued.
    stale = await get_nonce(b)
    await a.pool.execute(
        "UPDATE shared_secret_nonces SET expires_ts = expires_ts - 61000 WHERE nonce = $1", stale
    )
    fresh = await get_nonce(a)
    left = await a.pool.fetch("SELECT nonce FROM shared_secret_nonces")
    assert [r["nonce"] for r in left] == [fresh]


async def _admin(server: RunningServer) -> dict[str, Any]:
    user = await server.register("root")
    await server.pool.execute("UPDATE users SET admin = TRUE WHERE user_id = $1", user["user_id"])
    return user


async def _until_done(server: RunningServer, token: str, path: str) -> Any:
    """The task's status once it no longer runs (polled, bounded)."""
    for _ in range(200):
        body = await ok(server, "GET", path, token)
        if body["status"] not in ("shutting_down", "purging", "active"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"still running: {body}")


async def test_room_tasks_started_on_one_process_are_followed_on_the_other(two):
    """Admin requests spread over the `background` workers: a delete's or a
    purge's status is asked of whichever one the proxy picks."""
    a, b = two
    root = await _admin(a)
    alice, bob = await a.register("alice"), await a.register("bob")
    room_id = await create_room(a, alice["access_token"], invite=[bob["user_id"]])
    await join(b, bob["access_token"], room_id)
    started = await ok(
        a, "DELETE", f"{ADMIN}/v2/rooms/{quote(room_id)}", root["access_token"], {"purge": True}
    )
    delete_id = started["delete_id"]
    done = await _until_done(b, root["access_token"], f"{ADMIN}/v2/rooms/delete_status/{delete_id}")
    assert done["status"] == "complete", done
    assert sorted(done["shutdown_room"]["kicked_users"]) == sorted(
        [alice["user_id"], bob["user_id"]]
    )
    by_room = await ok(
        b, "GET", f"{ADMIN}/v2/rooms/{quote(room_id)}/delete_status", root["access_token"]
    )
    assert [(r["delete_id"], r["status"]) for r in by_room["results"]] == [(delete_id, "complete")]
    # A delete id is no purge id, and an unknown one is not found, on either.
    for server in (a, b):
        status, body = await server.request(
            "GET", f"{ADMIN}/v1/purge_history_status/{delete_id}", token=root["access_token"]
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        status, body = await server.request(
            "GET", f"{ADMIN}/v2/rooms/delete_status/nothing", token=root["access_token"]
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # A history purge started on B, followed on A.
    room_id = await create_room(a, alice["access_token"])
    await send(a, alice["access_token"], room_id, "old")
    cut = await send(a, alice["access_token"], room_id, "cut")
    started = await ok(
        b,
        "POST",
        f"{ADMIN}/v1/purge_history/{quote(room_id)}",
        root["access_token"],
        {"purge_up_to_event_id": cut, "delete_local_events": True},
    )
    done = await _until_done(
        a,
        root["access_token"],
        f"{ADMIN}/v1/purge_history_status/{started['purge_id']}",
    )
    assert done == {"status": "complete"}
    status, body = await a.request(
        "GET",
        f"{ADMIN}/v2/rooms/delete_status/{started['purge_id']}",
        token=root["access_token"],
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_a_delete_whose_process_died_is_reported_failed(
    server_factory: Any, database: str, tmp_path: Path
):
    """The process running a delete is killed (SIGKILL) mid-way: the other
    reports the delete failed, and a new delete of the room may start."""
    config = tmp_path / "doomed.yaml"
    client = f"127.0.0.1:{free_port()}"
    code, out = await run_cli(
        "generate-config",
        "--config",
        str(config),
        "--database-dsn",
        database,
        "--client-listen",
        client,
        "--federation-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert code == 0, out
    data = yaml.safe_load(config.read_text())
    data["cluster"] = {"enabled": True, "instance_name": "doomed"}
    config.write_text(yaml.safe_dump(data))
    b = await server_factory(cluster={"enabled": True, "instance_name": "b"})
    root = await _admin(b)
    alice = await b.register("alice")
    room_id = await create_room(b, alice["access_token"])
    proc, _ = await start_process(config)
    holder = await asyncpg.connect(database)
    try:
        await wait_until_up(f"http://{client}/_matrix/client/versions", proc)
        # The room's writes wait behind this lock: the delete stops mid-way.
        lock = holder.transaction()
        await lock.start()
        await holder.execute(LOCK_ROOM, room_id)
        async with aiohttp.ClientSession() as http:
            async with http.delete(
                f"http://{client}{ADMIN}/v2/rooms/{quote(room_id)}",
                json={},
                headers={"Authorization": f"Bearer {root['access_token']}"},
            ) as response:
                assert response.status == 200, await response.text()
                delete_id = (await response.json())["delete_id"]
        path = f"{ADMIN}/v2/rooms/delete_status/{delete_id}"
        assert (await ok(b, "GET", path, root["access_token"]))["status"] == "shutting_down"
        status, body = await b.request(
            "DELETE", f"{ADMIN}/v2/rooms/{quote(room_id)}", token=root["access_token"], json={}
        )
        assert (status, body["errcode"]) == (400, "M_UNKNOWN")
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        await lock.rollback()
        failed = await _until_done(b, root["access_token"], path)
        assert failed["status"] == "failed", failed
        assert "interrupted" in failed["error"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await holder.close()
    again = await ok(b, "DELETE", f"{ADMIN}/v2/rooms/{quote(room_id)}", root["access_token"], {})
    done = await _until_done(
        b, root["access_token"], f"{ADMIN}/v2/rooms/delete_status/{again['delete_id']}"
    )
    assert done["status"] == "complete", done
    assert done["shutdown_room"]["kicked_users"] == [alice["user_id"]]


async def _redacted_once(
    server: RunningServer, token: str, room_id: str, redact_id: str, said: list[str]
) -> None:
    """The job completes, as `server` reports it, and redacted Alice's two
    messages and her join (its display name and avatar), each once."""
    path = f"{ADMIN}/v1/user/redact_status/{redact_id}"
    for _ in range(200):
        job = await ok(server, "GET", path, token)
        if job["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    assert (job["status"], job["redacted"], job["total"]) == ("completed", 3, 3), job
    page = await ok(server, "GET", f"{V3}/rooms/{quote(room_id)}/messages?dir=b&limit=50", token)
    redacts = [
        e.get("redacts") or e["content"]["redacts"]
        for e in page["chunk"]
        if e["type"] == "m.room.redaction"
    ]
    assert len(redacts) == len(set(redacts)) == 3
    assert set(said) <= set(redacts)


async def test_a_redaction_job_runs_once_when_another_process_starts(
    server_factory: Any, database: str
):
    """A process that starts takes up the unfinished user redaction jobs no
    live process runs; not one that another process is running (each event
    would then be redacted twice)."""
    a = await server_factory(cluster={"enabled": True, "instance_name": "a"})
    root = await _admin(a)
    alice = await a.register("alice")
    room_id = await create_room(a, root["access_token"], invite=[alice["user_id"]])
    await join(a, alice["access_token"], room_id)
    said = [await send(a, alice["access_token"], room_id, f"regret {i}") for i in range(2)]
    holder = await asyncpg.connect(database)
    try:
        # A's job stops at its first redaction, waiting for the room's lock.
        lock = holder.transaction()
        await lock.start()
        await holder.execute(LOCK_ROOM, room_id)
        started = await ok(
            a,
            "POST",
            f"{ADMIN}/v1/user/{quote(alice['user_id'])}/redact",
            root["access_token"],
            {"rooms": [room_id]},
        )
        b = await server_factory(cluster={"enabled": True, "instance_name": "b"})
        await lock.rollback()
    finally:
        await holder.close()
    await _redacted_once(b, root["access_token"], room_id, started["redact_id"], said)


async def test_a_redaction_job_of_a_process_that_stopped_is_finished_by_a_live_one(
    server_factory: Any, database: str, monkeypatch: pytest.MonkeyPatch
):
    """A process that stops mid-job (between two redactions) leaves its job
    unfinished; a process that is already running takes it up (no restart
    needed) and finishes it, each event redacted once."""
    monkeypatch.setattr(redact_job, "ORPHAN_CHECK_S", 0.2)
    a = await server_factory(cluster={"enabled": True, "instance_name": "a"})
    b = await server_factory(cluster={"enabled": True, "instance_name": "b"})
    root = await _admin(a)
    alice = await a.register("alice")
    room_id = await create_room(a, root["access_token"], invite=[alice["user_id"]])
    await join(a, alice["access_token"], room_id)
    said = [await send(a, alice["access_token"], room_id, f"regret {i}") for i in range(2)]
    holder = await asyncpg.connect(database)
    try:
        # A's job waits for the room's lock at its first redaction; A is asked
        # to stop meanwhile, so it stops after that one.
        lock = holder.transaction()
        await lock.start()
        await holder.execute(LOCK_ROOM, room_id)
        started = await ok(
            a,
            "POST",
            f"{ADMIN}/v1/user/{quote(alice['user_id'])}/redact",
            root["access_token"],
            {"rooms": [room_id]},
        )
        stopping = asyncio.create_task(a.server.stop())
        await asyncio.sleep(0.2)
        await lock.rollback()
        await stopping
    finally:
        await holder.close()
    await _redacted_once(b, root["access_token"], room_id, started["redact_id"], said)


async def test_an_export_running_in_one_process_survives_another_starting(
    server_factory: Any, database: str
):
    """A process that starts reports as interrupted the exports that no live
    process runs any more; not one another process is writing."""
    a = await server_factory(cluster={"enabled": True, "instance_name": "a"})
    root = await _admin(a)
    alice = await a.register("alice")
    holder = await asyncpg.connect(database)
    try:
        # A's export stops where it reads Alice's profile.
        lock = holder.transaction()
        await lock.start()
        await holder.execute("LOCK TABLE profiles IN ACCESS EXCLUSIVE MODE")
        started = await ok(
            a, "POST", f"{ADMIN}/v1/export/user/{quote(alice['user_id'])}", root["access_token"], {}
        )
        b = await server_factory(cluster={"enabled": True, "instance_name": "b"})
        path = f"{ADMIN}/v1/export/{started['export_id']}"
        assert (await ok(b, "GET", path, root["access_token"]))["status"] == "running"
        await lock.rollback()
    finally:
        await holder.close()
    for _ in range(200):
        job = await ok(b, "GET", path, root["access_token"])
        if job["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "done", job
