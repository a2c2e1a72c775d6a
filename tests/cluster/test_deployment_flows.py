"""A deployment of readers, persisters, senders and background workers (real
processes on one database) behaves as one server: messages sent through
several processes reach a /sync long poll on another in one order, exactly
once; typing and to-device cross processes; SIGKILL of a room's owner, of a
federation sender and of the background worker in the middle of the load
loses no acknowledged message, and their rooms and duties are taken over."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.cluster.deployment import DeploymentClient, deployment, until

ROLES = {
    "r1": ["client"],
    "r2": ["client"],
    "p1": ["event_persister", "federation_inbound", "media"],
    "p2": ["event_persister", "pusher", "appservice"],
    "fs1": ["federation_sender"],
    "fs2": ["federation_sender"],
    "bg1": ["background"],
    "bg2": ["background"],
}
PERSISTERS = ["p1", "p2"]
MESSAGES = 24


@pytest.fixture
async def cluster(database: str, tmp_path: Path) -> Any:
    running = deployment(database, tmp_path / "data", ROLES)
    await running.start(*ROLES)
    try:
        async with aiohttp.ClientSession() as http:
            yield DeploymentClient(http, running, database)
    finally:
        await running.stop()


async def sync(
    cluster: DeploymentClient, worker: str, token: str, since: str | None, timeout_ms: int
) -> dict[str, Any]:
    # Every message of a catch-up in one response, not the last ten.
    whole = quote('{"room":{"timeline":{"limit":100}}}')
    query = f"?timeout={timeout_ms}&filter={whole}" + (f"&since={since}" if since else "")
    status, body = await cluster.call(worker, "GET", f"/sync{query}", token)
    assert status == 200, body
    return body


class Follower:
    """A client following /sync on one worker, keeping what it saw in order."""

    def __init__(self, cluster: DeploymentClient, worker: str, token: str, room_id: str) -> None:
        self.cluster, self.worker, self.token, self.room_id = cluster, worker, token, room_id
        self.bodies: list[str] = []
        self.typing: list[list[str]] = []
        self.to_device: list[dict[str, Any]] = []
        self.since: str | None = None

    async def start(self) -> None:
        self.since = (await sync(self.cluster, self.worker, self.token, None, 0))["next_batch"]

    async def follow(self, until_done: Any, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while not until_done(self):
            assert time.monotonic() < deadline, (self.bodies, self.typing, self.to_device)
            body = await sync(self.cluster, self.worker, self.token, self.since, 2000)
            self.since = body["next_batch"]
            room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for event in room.get("timeline", {}).get("events", []):
                if event["type"] == "m.room.message":
                    self.bodies.append(event["content"]["body"])
            for event in room.get("ephemeral", {}).get("events", []):
                if event["type"] == "m.typing":
                    self.typing.append(event["content"]["user_ids"])
            self.to_device.extend(body.get("to_device", {}).get("events", []))


async def test_a_deployment_behaves_as_one_server(cluster: DeploymentClient):
    alice = await cluster.register("r1", "alice")
    bob = await cluster.register("r2", "bob")
    room_id = await cluster.room_owned_by("p2", "r1", alice, PERSISTERS)
    status, body = await cluster.call("r2", "POST", f"/join/{quote(room_id)}", bob, {})
    assert status == 200, body
    follower = Follower(cluster, "r2", bob, room_id)
    await follower.start()

    # Typing through r1 shows in Bob's sync on r2; a to-device message
    # through p1 too.
    status, _ = await cluster.call(
        "r1",
        "PUT",
        f"/rooms/{quote(room_id)}/typing/{quote('@alice:localhost')}",
        alice,
        {"typing": True, "timeout": 30000},
    )
    assert status == 200
    status, _ = await cluster.call(
        "p1",
        "PUT",
        "/sendToDevice/org.example.ping/td1",
        alice,
        {"messages": {"@bob:localhost": {"*": {"n": 1}}}},
    )
    assert status == 200
    await follower.follow(lambda f: ["@alice:localhost"] in f.typing and f.to_device, within_s=15)
    assert [e["content"] for e in follower.to_device] == [{"n": 1}]

    # Messages through three processes, one after the other; halfway, the
    # room's owner (p2), a federation sender and a background worker die.
    sent: list[str] = []
    via = ["r1", "p1", "p2"]
    held_before = await cluster.cluster.duties()
    doomed_sender = next(n for n in ("fs1", "fs2") if held_before[n])
    doomed_background = next(n for n in ("bg1", "bg2") if held_before[n])
    for i in range(MESSAGES):
        if i == MESSAGES // 2:
            for name in ("p2", doomed_sender, doomed_background):
                await cluster.cluster.kill(name)
            via = ["r1", "p1", "r2"]
        body = f"m{i}"
        await cluster.send(via[i % 3], alice, room_id, body, f"txn-{i}")
        sent.append(body)

    await follower.follow(lambda f: len(f.bodies) >= MESSAGES, within_s=30)
    assert follower.bodies == sent
    # Read back from another reader and the surviving persister: each once.
    assert await cluster.bodies("r1", alice, room_id) == sent
    assert await cluster.bodies("p1", alice, room_id) == sent

    # The survivors took over the dead ones' duties.
    async def taken_over() -> bool:
        held = await cluster.cluster.duties()
        alive_sender = "fs2" if doomed_sender == "fs1" else "fs1"
        alive_background = "bg2" if doomed_background == "bg1" else "bg1"
        return set(held_before[doomed_sender]) <= set(held[alive_sender]) and set(
            held_before[doomed_background]
        ) <= set(held[alive_background])

    await until(taken_over, 20)
