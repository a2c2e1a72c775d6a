"""Two server processes of one deployment on one database: the retention
purge job runs in one of them; SIGKILL that one and the other takes the job
over within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg

from storage import leases
from tests.test_process import free_port, run_cli, wait_until_up

TAKEN = b"lease retention-purge taken"


async def start_process(config: Path) -> tuple[asyncio.subprocess.Process, bytearray]:
    """`homeserver run`, its output gathered as it comes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "homeserver",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = bytearray()

    async def gather() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(4096):
            output.extend(chunk)

    asyncio.get_running_loop().create_task(gather())
    return proc, output


async def until(condition, within_s: float) -> None:
    for _ in range(int(within_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within time")


async def test_sigkill_of_the_job_holder_moves_the_job(database: str, tmp_path: Path):
    first = tmp_path / "first.yaml"
    code, out = await run_cli(
        "generate-config",
        "--config",
        str(first),
        "--database-dsn",
        database,
        "--client-listen",
        f"127.0.0.1:{free_port()}",
        "--federation-listen",
        f"127.0.0.1:{free_port()}",
    )
    assert code == 0, out
    # The second process: the same server (keys, data directory, database)
    # on listeners of its own.
    text = first.read_text()
    second = tmp_path / "second.yaml"
    ports = {}
    for key in ("client_listen", "federation_listen"):
        line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
        ports[key] = f"127.0.0.1:{free_port()}"
        text = text.replace(line, f"{key}: {ports[key]}")
    second.write_text(text)

    procs = []
    try:
        a, out_a = await start_process(first)
        procs.append(a)
        await until(lambda: TAKEN in out_a, 60)
        b, out_b = await start_process(second)
        procs.append(b)
        await wait_until_up(f"http://{ports['client_listen']}/_matrix/client/versions", b)
        conn = await asyncpg.connect(database)
        try:
            holder = await leases.holder(conn, "retention-purge")
            assert holder is not None
            assert TAKEN not in out_b  # one runner at a time

            os.kill(a.pid, signal.SIGKILL)
            await a.wait()
            await until(lambda: TAKEN in out_b, 15)
            assert await leases.holder(conn, "retention-purge") not in (None, holder)
        finally:
            await conn.close()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
