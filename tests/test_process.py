"""The server as a person runs it: a process with the embedded PostgreSQL,
the CLI's register-user, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_cli(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "homeserver",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=180)
    return proc.returncode, out.decode()


async def wait_until_up(url: str, proc: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.returncode is not None:
                raise AssertionError("the server exited during start-up")
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the server did not start")


@pytest.fixture
def data_root() -> Iterator[Path]:
    """A directory outside pytest's temporary root: when the tests run as root,
    the embedded PostgreSQL runs as its own system user, which is given access
    to the path, and any other pytest run on the machine resets pytest's root
    to mode 0700 as it starts."""
    with tempfile.TemporaryDirectory(prefix="hs-process-") as tmp:
        yield Path(tmp)


async def test_embedded_postgres_server_cli_and_sigterm(data_root: Path):
    config = data_root / "data" / "homeserver.yaml"
    port = free_port()
    code, out = await run_cli(
        "generate-config",
        "--config",
        str(config),
        "--open-registration",
        "--client-listen",
        f"127.0.0.1:{port}",
        "--federation-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert code == 0, out
    code, out = await run_cli("migrate", "--config", str(config))
    assert code == 0, out
    code, out = await run_cli(
        "register-user", "--config", str(config), "--user", "root", "--admin", stdin=b"s3cret\n"
    )
    assert code == 0 and "@root:localhost" in out, out

    log = (data_root / "server.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homeserver", "run", "--config", str(config), stdout=log, stderr=log
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_until_up(f"{base}/_matrix/client/versions", proc)
        async with aiohttp.ClientSession() as http:
            login = {"type": "m.login.password", "user": "root", "password": "s3cret"}
            async with http.post(f"{base}/_matrix/client/v3/login", json=login) as resp:
                assert resp.status == 200
                assert (await resp.json())["user_id"] == "@root:localhost"
        assert (data_root / "data" / "postgres").is_dir()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
    # The user and the data survive a restart.
    code, out = await run_cli(
        "register-user", "--config", str(config), "--user", "root", "--password", "x"
    )
    assert code == 1 and "exists already" in out, out
