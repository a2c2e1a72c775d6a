"""Pushes in a deployment come from the `pusher` worker holding the pushers'
lease, read from the database: a message sent through a client worker and
stored by the event persister is pushed once, by the pusher; a read receipt
through the client worker pushes the new badge; and when the pusher holding
the lease is SIGKILLed while the gateway fails, the other pusher takes over
from the stored position and every message is pushed (at least once). With
`push.suppress_when_active`, a user holding a /sync on the client worker is
not pushed by the pusher worker (another process), and is once they stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import attrs
from aiohttp import web

from tests.cluster.deployment import DeploymentClient, deployment, until
from tests.test_pushers import NOTIFY, Gateway, pusher_body

ROLES = {
    "c1": ["client"],
    "p1": [
        "event_persister",
        "media",
        "federation_inbound",
        "federation_sender",
        "appservice",
        "background",
    ],
    "push1": ["pusher"],
    "push2": ["pusher"],
}
PUSHERS = ("push1", "push2")
MESSAGES = 5


@attrs.define
class Recorder(Gateway):
    """The tests' gateway, also keeping what it answered with 200, in order."""

    accepted: list[dict[str, Any]] = attrs.field(factory=list)

    async def notify(self, request: web.Request) -> web.Response:
        failing = self.failures > 0
        response = await super().notify(request)
        if not failing:
            self.accepted.append(self.received[-1]["notification"])
        return response

    def event_ids(self) -> list[str]:
        return [n["event_id"] for n in self.accepted if n.get("event_id")]


@contextlib.asynccontextmanager
async def running_recorder() -> AsyncIterator[Recorder]:
    gateway = Recorder()
    app = web.Application()
    app.router.add_post(NOTIFY, gateway.notify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gateway.url = f"http://127.0.0.1:{port}{NOTIFY}"
    try:
        yield gateway
    finally:
        await runner.cleanup()


async def holders(cluster: DeploymentClient) -> list[str]:
    held = await cluster.cluster.duties()
    return [name for name, duties in held.items() if "pusher" in duties]


async def test_pushes_come_from_the_pusher_worker_and_survive_its_death(
    database: str, tmp_path: Path
):
    async with running_recorder() as gateway:
        running = deployment(
            database,
            tmp_path / "data",
            ROLES,
            push={"suppress_when_active": True},
            # Presence reports every half second (a sixth of the sync timeout).
            presence={"sync_timeout_ms": 3000},
        )
        await running.start(*ROLES)
        try:
            async with aiohttp.ClientSession() as http:
                await _scenario(DeploymentClient(http, running, database), gateway)
        except BaseException:
            # What the workers logged says why (pytest shows it with the failure).
            for worker in running.workers.values():
                print(f"----- {worker.name}\n{worker.output.decode()[-6000:]}")
            raise
        finally:
            await running.stop()


async def _scenario(cluster: DeploymentClient, gateway: Recorder) -> None:

    alice = await cluster.register("c1", "alice")
    bob = await cluster.register("c1", "bob")
    status, body = await cluster.call(
        "c1", "POST", "/pushers/set", bob, pusher_body("bob-key", gateway.url)
    )
    assert status == 200, body
    status, body = await cluster.call("c1", "POST", "/createRoom", alice, {"preset": "public_chat"})
    assert status == 200, body
    room_id = body["room_id"]
    status, body = await cluster.call("c1", "POST", f"/join/{quote(room_id)}", bob, {})
    assert status == 200, body

    # One pusher worker holds the lease; the persister and the reader none.
    (holder,) = await until(lambda: holders(cluster), 15)
    assert holder in PUSHERS

    # A message through the client worker, stored by p1, pushed once by the pusher.
    first = await cluster.send("c1", alice, quote(room_id), "hello", "t0")
    await until(_async(lambda: first in gateway.event_ids()), 15)
    pushed = next(n for n in gateway.accepted if n.get("event_id") == first)
    assert pushed["counts"] == {"unread": 1}
    assert pushed["devices"][0]["pushkey"] == "bob-key"
    assert pushed["content"]["body"] == "hello"

    # Bob reads it through the client worker: the pusher sends his new badge.
    status, body = await cluster.call(
        "c1", "POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(first)}", bob, {}
    )
    assert status == 200, body

    def badges() -> list[dict[str, Any]]:
        return [n for n in gateway.accepted if not n.get("event_id")]

    (badge,) = await until(_async(badges), 15)
    assert badge["counts"] == {"unread": 0}
    assert gateway.event_ids() == [first]

    # The gateway fails; the holder retries with backoff until it is killed.
    gateway.failures = 10**6
    sent = [
        await cluster.send("c1", alice, quote(room_id), f"message {i}", f"t{i + 1}")
        for i in range(MESSAGES)
    ]
    tried = len(gateway.received)
    await until(_async(lambda: len(gateway.received) > tried), 15)
    await cluster.cluster.kill(holder)
    gateway.failures = 0
    other = next(name for name in PUSHERS if name != holder)
    assert await until(lambda: holders(cluster), 15) == [other]

    # The other pusher resumes where the dead one stopped: nothing lost.
    await until(_async(lambda: set(sent) <= set(gateway.event_ids())), 20)
    assert gateway.event_ids()[0] == first
    # Each message once, but for those in flight at the kill (at least once).
    assert set(gateway.event_ids()) == {first, *sent}

    # Bob's client is open on c1 (a long poll there): the pusher, another
    # process, sends him nothing; once he stops syncing, it pushes again.
    status, body = await cluster.call("c1", "GET", "/sync?timeout=0", bob)
    assert status == 200, body
    poll = asyncio.create_task(
        cluster.call("c1", "GET", f"/sync?since={body['next_batch']}&timeout=20000", bob)
    )
    await until(lambda: _reported_syncing(cluster, bob), 10)
    unheard = await cluster.send("c1", alice, quote(room_id), "while you look", "look")
    status, woken = await poll
    assert status == 200, woken
    assert unheard in [e["event_id"] for e in woken["rooms"]["join"][room_id]["timeline"]["events"]]
    # Two presence reports (0.5 s apart) later nobody holds his sync.
    await asyncio.sleep(1.5)
    heard = await cluster.send("c1", alice, quote(room_id), "while you are away", "away")
    await until(_async(lambda: heard in gateway.event_ids()), 15)
    assert unheard not in gateway.event_ids()


async def _reported_syncing(cluster: DeploymentClient, token: str) -> bool:
    """Whether some process reported the token's user syncing (presence_syncs)."""
    status, me = await cluster.call("c1", "GET", "/account/whoami", token)
    assert status == 200, me
    conn = await asyncpg.connect(cluster.database)
    try:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FROM presence_syncs WHERE user_id = $1", me["user_id"]
            )
        )
    finally:
        await conn.close()


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run
