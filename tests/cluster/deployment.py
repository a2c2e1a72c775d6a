"""A deployment of several worker processes on one database, for the tests:
its shared config, starting and killing its workers, and asking each
which duties it holds (the internal API)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import yaml

from homeserver.cluster.roles import CLIENT_LISTENER_ROLES, owner_of
from homeserver.keyfiles import ensure_self_signed_certificate, ensure_signing_key
from tests.test_process import free_port

ALL_ROLES = (
    "client",
    "event_persister",
    "federation_inbound",
    "federation_sender",
    "pusher",
    "appservice",
    "media",
    "background",
)


@attrs.define
class Worker:
    name: str
    client: str | None
    federation: str | None
    internal: str
    proc: asyncio.subprocess.Process | None = None
    output: bytearray = attrs.Factory(bytearray)


@attrs.define
class Deployment:
    config_path: Path
    secret: str
    workers: dict[str, Worker]
    public_client: str
    public_federation: str

    async def start(self, *names: str) -> None:
        """Start the workers and wait until each answers on its internal listener."""
        for name in names:
            worker = self.workers[name]
            worker.output = bytearray()
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "homeserver",
                "run",
                "--config",
                str(self.config_path),
                "--worker",
                name,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            asyncio.get_running_loop().create_task(_gather(worker.proc, worker.output))
        await asyncio.gather(*(self._wait_up(self.workers[name]) for name in names))

    async def _wait_up(self, worker: Worker) -> None:
        for _ in range(900):
            assert worker.proc is not None
            if worker.proc.returncode is not None:
                raise AssertionError(f"{worker.name} exited: {worker.output.decode()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await self.status(worker.name)
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{worker.name} did not start")

    async def status(self, name: str) -> dict[str, Any]:
        """The worker's own account of itself (GET .../internal/v1/status)."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://{self.workers[name].internal}/_homeserver/internal/v1/status",
                headers={"Authorization": f"Bearer {self.secret}"},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp,
        ):
            resp.raise_for_status()
            return await resp.json()

    async def duties(self) -> dict[str, list[str]]:
        """Which running worker holds which duties."""
        running = [n for n, w in self.workers.items() if w.proc and w.proc.returncode is None]
        found = await asyncio.gather(*(self.status(n) for n in running))
        return {n: s["duties"] for n, s in zip(running, found, strict=True)}

    async def kill(self, name: str) -> None:
        """SIGKILL: the worker dies without a word to anyone."""
        proc = self.workers[name].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        for worker in self.workers.values():
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers.values():
            if worker.proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker.proc.wait(), 30)
                if worker.proc.returncode is None:
                    worker.proc.kill()


async def _gather(proc: asyncio.subprocess.Process, output: bytearray) -> None:
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(4096):
        output.extend(chunk)


def deployment(
    database: str, data_dir: Path, roles: Mapping[str, Sequence[str]], **overrides: Any
) -> Deployment:
    """Write the shared config of workers with `roles`; keys made beforehand,
    so that no two workers make them at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_signing_key(data_dir / "signing.key")
    ensure_self_signed_certificate(data_dir / "tls.crt", data_dir / "tls.key", "localhost")
    taken: set[int] = set()

    def port() -> int:
        """A free port none of this deployment's listeners has yet (the
        kernel may hand a just-closed probe's port out twice)."""
        found = free_port()
        while found in taken:
            found = free_port()
        taken.add(found)
        return found

    secret = secrets.token_urlsafe(32)
    workers: dict[str, Worker] = {}
    section: dict[str, Any] = {}
    for name, worker_roles in roles.items():
        answers_clients = bool(CLIENT_LISTENER_ROLES & set(worker_roles))
        client = f"127.0.0.1:{port()}" if answers_clients else None
        federation = f"127.0.0.1:{port()}" if "federation_inbound" in worker_roles else None
        workers[name] = Worker(name, client, federation, f"127.0.0.1:{port()}")
        section[name] = {
            "roles": list(worker_roles),
            "client_listen": client,
            "federation_listen": federation,
            "internal_listen": workers[name].internal,
        }
    public_client, public_federation = f"127.0.0.1:{port()}", f"127.0.0.1:{port()}"
    data: dict[str, Any] = {
        "server_name": "localhost",
        "data_dir": str(data_dir),
        "client_listen": public_client,
        "federation_listen": public_federation,
        "database": {"dsn": database, "min_pool_size": 1, "max_pool_size": 5},
        "enable_registration": True,
        "registration_requires_token": False,
        "bcrypt_rounds": 4,
        "rate_limits": {"enabled": False},
        "federation_insecure": True,
        "workers": section,
        "worker_shared_secret": secret,
        **overrides,
    }
    path = data_dir / "homeserver.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Deployment(path, secret, workers, public_client, public_federation)


async def until(check: Callable[[], Any], within_s: float) -> Any:
    """Poll an async `check` until it returns something true."""
    result = None
    for _ in range(int(within_s / 0.1)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within_s} s (last: {result!r})")


class DeploymentClient:
    """Client requests to a chosen worker's own listener."""

    def __init__(self, http: aiohttp.ClientSession, cluster: Deployment, database: str) -> None:
        self.http = http
        self.cluster = cluster
        self.database = database

    async def call(
        self, worker: str, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"http://{self.cluster.workers[worker].client}/_matrix/client/v3{path}"
        async with self.http.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def register(self, worker: str, name: str) -> str:
        status, body = await self.call(
            worker,
            "POST",
            "/register",
            body={"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}},
        )
        assert status == 200, body
        return body["access_token"]

    async def room_owned_by(
        self, worker: str, via: str, token: str, persisters: Sequence[str]
    ) -> str:
        """A new public room whose owner (while `persisters` are up) is `worker`."""
        for _ in range(40):
            status, body = await self.call(
                via, "POST", "/createRoom", token, {"preset": "public_chat"}
            )
            assert status == 200, body
            if owner_of(body["room_id"], persisters) == worker:
                return body["room_id"]
        raise AssertionError(f"no room owned by {worker}")

    async def send(self, worker: str, token: str, room_id: str, body: str, txn: str) -> str:
        status, answer = await self.call(
            worker,
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/{txn}",
            token,
            {"msgtype": "m.text", "body": body},
        )
        assert status == 200, answer
        return answer["event_id"]

    async def bodies(self, worker: str, token: str, room_id: str) -> list[str]:
        status, answer = await self.call(
            worker, "GET", f"/rooms/{room_id}/messages?dir=f&limit=1000", token
        )
        assert status == 200, answer
        return [e["content"]["body"] for e in answer["chunk"] if e["type"] == "m.room.message"]
