"""Federation with a real Synapse through a deployment's workers, behind nginx
(or, where nginx is not installed, with the federation_inbound worker's
listener as the public federation address):
a Synapse user joins a room of ours (make_join/send_join through the
federation_inbound worker), messages cross both ways (ours leave through the
federation_sender worker owning Synapse's shard, Synapse's reach our user's
/sync on a client worker), and after a SIGKILL of that sender while our user
keeps sending, every message reaches Synapse exactly once, sent by the other
sender once it took the shard over."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yaml

from homeserver.cluster.federation_shards import shard_of
from tests.cluster.deployment import Deployment, DeploymentClient, deployment, until
from tests.cluster.test_worker_routes import NGINX
from tests.interop.matrix_client import MatrixError
from tests.interop.synapse import SynapseServer
from tests.test_process import free_port, run_cli

# Four processes: each started worker costs seconds of imports on a busy CI
# machine, so the roles this test does not look at share the client's.
ROLES = {
    "main": ["client", "event_persister", "media", "pusher", "appservice", "background"],
    "inbound": ["federation_inbound"],
    "fs1": ["federation_sender"],
    "fs2": ["federation_sender"],
}
SENDERS = ["fs1", "fs2"]
MESSAGES = 12


async def start_nginx(cluster: Deployment, prefix: Path) -> asyncio.subprocess.Process:
    """nginx in front of the workers, with the config `worker-routes --nginx`
    writes; returned once it answers on the public federation address."""
    assert NGINX is not None
    code, out = await run_cli("worker-routes", "--config", str(cluster.config_path), "--nginx")
    assert code == 0, out
    (prefix / "logs").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(out)
    settings = f"pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log;"
    nginx = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(prefix), "-c", str(conf), "-g", f"daemon off; {settings}"
    )
    url = f"https://{cluster.public_federation}/_matrix/federation/v1/version"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:

        async def answers() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as resp:
                    return resp.status == 200
            return False

        await until(answers, 10)
    return nginx


def name_after_front(cluster: Deployment, front: str) -> str:
    """Make `front` the deployment's public federation address and name the
    server after it: Synapse connects to a name with a port as it is (no
    well-known, no SRV)."""
    port = front.rsplit(":", 1)[1]
    data = yaml.safe_load(cluster.config_path.read_text())
    data["server_name"] = f"localhost:{port}"
    data["federation_listen"] = front
    cluster.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    cluster.public_federation = front
    return data["server_name"]


@pytest.fixture
async def cluster(database: str, tmp_path: Path) -> Any:
    running = deployment(database, tmp_path / "data", ROLES)
    # nginx in front when Debian's is installed (as `make test` does);
    # otherwise Synapse reaches the federation_inbound worker's listener.
    inbound = running.workers["inbound"].federation
    assert inbound is not None
    name_after_front(running, f"127.0.0.1:{free_port()}" if NGINX else inbound)
    nginx = None
    try:
        await running.start(*ROLES)
        if NGINX:
            nginx = await start_nginx(running, tmp_path / "nginx")
        async with aiohttp.ClientSession() as http:
            yield DeploymentClient(http, running, database)
    finally:
        if nginx is not None and nginx.returncode is None:
            nginx.terminate()
            await nginx.wait()
        await running.stop()


async def synapse_bodies(synapse_user: Any, room_id: str) -> list[str]:
    """The message bodies of the room in Synapse's timeline, oldest first."""
    answer = await synapse_user.ok(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages",
        params={"dir": "b", "limit": "1000"},
    )
    return [
        e["content"].get("body") for e in reversed(answer["chunk"]) if e["type"] == "m.room.message"
    ]


async def test_federation_with_synapse_through_the_workers(
    cluster: DeploymentClient, synapse: SynapseServer
):
    server_name = yaml.safe_load(cluster.cluster.config_path.read_text())["server_name"]
    alice = await cluster.register("main", "alice")
    status, created = await cluster.call(
        "main", "POST", "/createRoom", alice, {"preset": "public_chat", "name": "Workers"}
    )
    assert status == 200, created
    room_id = created["room_id"]

    # The Synapse user joins through nginx and the federation_inbound worker.
    syd = await synapse.register()
    assert await syd.join(room_id, via=[server_name]) == room_id

    async def members() -> set[str]:
        status, body = await cluster.call(
            "main", "GET", f"/rooms/{quote(room_id)}/joined_members", alice
        )
        assert status == 200, body
        return set(body["joined"])

    assert syd.user_id in await until(members, 10)
    # Each worker's log names the listeners it opened, and only those.
    front = cluster.cluster.public_federation
    logs = {name: bytes(w.output).decode() for name, w in cluster.cluster.workers.items()}
    assert "serving clients on no listener here and federation on no listener here" in logs["fs1"]
    assert f"federation on {cluster.cluster.workers['inbound'].federation}" in logs["inbound"]
    assert f"federation on {front}" not in logs["main"]

    # Synapse's shard is the own shard of one sender (by name), which holds it
    # while it is up.
    index = shard_of(synapse.server_name, len(SENDERS))
    shard = f"federation-sender-{index}-of-{len(SENDERS)}"
    doomed, survivor = SENDERS[index], SENDERS[1 - index]

    async def held_by_doomed() -> bool:
        return shard in (await cluster.cluster.duties())[doomed]

    await until(held_by_doomed, 20)

    # Ours reach Synapse.
    sent = ["hello 0"]
    await cluster.send("main", alice, room_id, sent[0], "txn-0")
    await until(lambda: _has(syd, room_id, sent), 15)

    # Synapse's reach our user's /sync on the client worker.
    from_synapse = await syd.send_text(room_id, "hello from synapse")

    async def seen_by_alice() -> bool:
        status, body = await cluster.call("main", "GET", "/sync?timeout=1000", alice)
        assert status == 200, body
        timeline = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {})
        return from_synapse in [e["event_id"] for e in timeline.get("events", [])]

    await until(seen_by_alice, 15)

    # The shard's sender dies while Alice keeps sending, and Syd sends at the
    # same time (his events persisted by the inbound worker, hers by main, in
    # one room): every message arrives, exactly once, Alice's through the
    # other sender.
    async def alice_sends() -> None:
        for i in range(1, MESSAGES):
            if i == MESSAGES // 2:
                await cluster.cluster.kill(doomed)
            body = f"hello {i}"
            await cluster.send("main", alice, room_id, body, f"txn-{i}")
            sent.append(body)

    syds = ["hello from synapse"] + [f"syd {i}" for i in range(MESSAGES // 2)]

    async def syd_sends() -> None:
        for body in syds[1:]:
            await syd.send_text(room_id, body)

    await asyncio.gather(alice_sends(), syd_sends())

    await until(lambda: _has(syd, room_id, sent + syds), 30)
    at_synapse = await synapse_bodies(syd, room_id)
    assert [b for b in at_synapse if b in sent] == sent
    assert sorted(at_synapse) == sorted(sent + syds)
    assert shard in (await cluster.cluster.duties())[survivor]

    async def all_here() -> list[str] | None:
        ours = await cluster.bodies("main", alice, room_id)
        return ours if set(syds) <= set(ours) else None

    here = await until(all_here, 15)
    assert [b for b in here if b in sent] == sent
    assert sorted(here) == sorted(sent + syds)


async def _has(syd: Any, room_id: str, sent: list[str]) -> bool:
    """Whether Synapse's timeline holds every one of `sent` (it may not know
    the room's history yet right after the join: 403 until then)."""
    with contextlib.suppress(MatrixError):
        bodies = await synapse_bodies(syd, room_id)
        return set(sent) <= set(bodies)
    return False
