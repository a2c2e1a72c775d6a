"""Real processes for the drills: our server as `python -m homeserver run`, and
a PostgreSQL of the drill's own that can be stopped and started under it.

The server is a child process so that a drill can SIGKILL it like a crash
would; PostgreSQL runs detached (pg_ctl), so it outlives the server and the
drill can restart it while the server keeps running.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.interop.synapse import free_port

STARTUP_TIMEOUT = 90.0


class DrillPostgres:
    """A PostgreSQL server in `directory` that the drill can stop and start again.

    pgserver initialises and first starts it (it knows how to run PostgreSQL
    when the tests run as root); stopping and starting again go through
    pg_ctl with the same socket directory, so DSNs stay valid across a restart.
    """

    def __init__(self, directory: Path) -> None:
        self.pgdata = directory / "pgdata"
        self._server: Any = None
        self.admin_dsn = ""

    def start(self) -> str:
        import pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        self.admin_dsn = self._server.get_uri()
        return self.admin_dsn

    def dsn(self, database: str) -> str:
        url = urllib.parse.urlsplit(self.admin_dsn)
        return urllib.parse.urlunsplit(url._replace(path=f"/{database}"))

    def create_database(self, name: str) -> str:
        self._server.psql(f'CREATE DATABASE "{name}";')
        return self.dsn(name)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def stop_now(self) -> None:
        """Stop as an administrator restarting it would: fast shutdown, clients cut off."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start_again(self) -> None:
        socket_dir = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.admin_dsn).query))[
            "host"
        ]
        log = str(self.pgdata / "log")
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log, "start")

    def cleanup(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class HomeserverProcess:
    """Our server run the way an operator runs it, on a database the drill owns."""

    def __init__(self, directory: Path, dsn: str, **overrides: Any) -> None:
        self.directory = directory
        self.client_port = free_port()
        self.federation_port = free_port(avoid=self.client_port)
        self.config_path = directory / "homeserver.yaml"
        self.log_path = directory / "server.log"
        self.config: dict[str, Any] = {
            "server_name": "localhost",
            "data_dir": str(directory),
            "client_listen": f"127.0.0.1:{self.client_port}",
            "federation_listen": f"127.0.0.1:{self.federation_port}",
            "database": {"dsn": dsn, "min_pool_size": 2, "max_pool_size": 10},
            "enable_registration": True,
            "registration_requires_token": False,
            "bcrypt_rounds": 4,
            "rate_limits": {"enabled": False},
            **overrides,
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        with self.log_path.open("ab") as log:
            # A plain Popen, not asyncio's: the drills kill and poll it from
            # sync code too, and spawning does not block the loop for long.
            self._process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "homeserver", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        await self._wait_until_up()

    async def _wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise AssertionError(f"the server exited while starting:\n{self.log_tail()}")
                try:
                    async with http.get(
                        f"{self.url}/_matrix/client/versions", timeout=aiohttp.ClientTimeout(2)
                    ) as resp:
                        if resp.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass  # not listening yet
                await asyncio.sleep(0.2)
        raise AssertionError(f"the server did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash or an OOM kill."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    async def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after a while): an operator's clean stop."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:] or "(no log)"
