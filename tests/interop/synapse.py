"""A real Synapse for interoperability tests: installed on demand, run on loopback.

The virtualenv is the Makefile's `.venv-synapse` with the same pins and the
same stamp file, so `make bench` and the tests share one installation and a
fresh clone (CI) installs it on first use instead of skipping anything.

Synapse runs as a federation peer reachable without DNS: its server name is
`127.0.0.1:PORT` and it serves federation with TLS on exactly that port, so
other servers connect to the name directly (an IP literal with a port means no
well-known and no SRV lookup). Certificate checks and the private-address
blocklists are off so that it federates with a self-signed server on loopback.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import hashlib
import hmac
import itertools
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from homeserver.keyfiles import ensure_self_signed_certificate, ensure_signing_key
from tests.interop.matrix_client import MatrixClient, MatrixError, call, register

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNAPSE_VENV = REPO_ROOT / ".venv-synapse"
SYNAPSE_VERSION = "1.142.0"
# The same requirements as the Makefile's SYNAPSE_STAMP rule; prometheus-client is
# pinned because newer releases break this Synapse's import.
SYNAPSE_REQUIREMENTS = (
    f"matrix-synapse[postgres]=={SYNAPSE_VERSION}",
    "prometheus-client==0.23.1",
)
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
PASSWORD = "interop-password"

_NO_LIMIT = {"per_second": 1_000_000, "burst_count": 1_000_000}
# Every rate limit of this Synapse version, out of reach: the tests send bursts
# no real client would, and a 429 would only make them flaky.
_RATE_LIMITS: dict[str, Any] = {
    **{
        name: dict(_NO_LIMIT)
        for name in (
            "rc_message",
            "rc_registration",
            "rc_registration_token_validity",
            "rc_joins_per_room",
            "rc_3pid_validation",
            "rc_admin_redaction",
            "rc_media_create",
            "rc_delayed_event_mgmt",
            "rc_room_creation",
            "rc_reports",
            "rc_third_party_invite",
            "rc_key_requests",
        )
    },
    "rc_login": {kind: dict(_NO_LIMIT) for kind in ("address", "account", "failed_attempts")},
    "rc_joins": {kind: dict(_NO_LIMIT) for kind in ("local", "remote")},
    "rc_invites": {kind: dict(_NO_LIMIT) for kind in ("per_room", "per_user", "per_issuer")},
    "rc_presence": {"per_user": dict(_NO_LIMIT)},
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 1_000_000,
        "sleep_delay": 0,
        "reject_limit": 1_000_000,
        "concurrent": 1_000_000,
    },
    "remote_media_download_per_second": "1G",
    "remote_media_download_burst_count": "10G",
}


def ensure_synapse_venv(venv: Path = SYNAPSE_VENV) -> Path:
    """Install Synapse into `venv` unless its stamp says it is there; return its python.

    Idempotent and safe when several pytest processes call it at once: the
    install runs under an exclusive lock on a file inside the venv directory,
    and the stamp (the Makefile's name) is touched only after pip succeeded.
    """
    python = venv / "bin" / "python"
    stamp = venv / f".installed-{SYNAPSE_VERSION}"
    if stamp.exists():
        return python
    venv.mkdir(parents=True, exist_ok=True)
    with (venv / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return python
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", *SYNAPSE_REQUIREMENTS])
        stamp.touch()
    return python


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def free_port(avoid: int | None = None) -> int:
    """A TCP port free on 127.0.0.1 right now (and not `avoid`, picked a moment
    ago but not bound yet), for servers whose name must carry their port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != avoid:
            return port


async def create_synapse_database(admin_dsn: str, name: str) -> None:
    """(Re)create `name` with the C collation and UTF8 encoding Synapse insists on."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    finally:
        await conn.close()


async def drop_synapse_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def postgres_database_config(admin_dsn: str, name: str) -> dict[str, Any]:
    """Synapse's `database` section for database `name` on the server of `admin_dsn`.

    psycopg2 takes keyword arguments, not our postgresql:// URL; the embedded
    server's URL names its socket directory in the `host` query parameter.
    """
    url = urllib.parse.urlsplit(admin_dsn)
    query = dict(urllib.parse.parse_qsl(url.query))
    args: dict[str, Any] = {
        "user": urllib.parse.unquote(url.username or "postgres"),
        "database": name,
        "host": query.get("host") or url.hostname or "localhost",
        "cp_min": 1,
        "cp_max": 5,
    }
    if url.password:
        args["password"] = urllib.parse.unquote(url.password)
    port = url.port or query.get("port")
    if port:
        args["port"] = int(port)
    return {"name": "psycopg2", "args": args}


def _die_with_parent() -> None:
    """In the child: get SIGTERM when pytest dies, so no Synapse outlives a killed run."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class SynapseServer:
    """One Synapse process on loopback: plain HTTP for clients, TLS for federation.

    Use as an async context manager; `start` waits until the client API
    answers and raises with the tail of Synapse's log if it does not.
    """

    def __init__(
        self,
        python: Path,
        directory: Path,
        database: dict[str, Any],
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.python = python
        self.directory = directory
        self.database = database
        self.extra_config = extra_config or {}
        self.client_port = free_port()
        self.federation_port = free_port(avoid=self.client_port)
        self.server_name = f"127.0.0.1:{self.federation_port}"
        self.registration_shared_secret = secrets.token_hex(16)
        self.log_path = directory / "homeserver.log"
        self.output_path = directory / "output.log"
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._localparts = itertools.count()

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def federation_url(self) -> str:
        return f"https://127.0.0.1:{self.federation_port}"

    @property
    def http(self) -> aiohttp.ClientSession:
        """A session that accepts Synapse's self-signed federation certificate."""
        assert self._http is not None, "Synapse is not running"
        return self._http

    def config(self) -> dict[str, Any]:
        """Synapse's homeserver.yaml as a dict, with key files created on the way."""
        d = self.directory
        ensure_signing_key(d / "signing.key")
        ensure_self_signed_certificate(d / "tls.crt", d / "tls.key", self.server_name)
        (d / "log.yaml").write_text(yaml.safe_dump(self._log_config()))
        resources = ["client", "media"]
        return {
            "server_name": self.server_name,
            "public_baseurl": self.client_url + "/",
            "pid_file": str(d / "homeserver.pid"),
            "report_stats": False,
            "signing_key_path": str(d / "signing.key"),
            "tls_certificate_path": str(d / "tls.crt"),
            "tls_private_key_path": str(d / "tls.key"),
            "media_store_path": str(d / "media_store"),
            "log_config": str(d / "log.yaml"),
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "registration_shared_secret": self.registration_shared_secret,
            "listeners": [
                {
                    "port": self.client_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": resources, "compress": False}],
                },
                {
                    "port": self.federation_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    "resources": [{"names": ["federation", "keys", "media"], "compress": False}],
                },
            ],
            "database": self.database,
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "bcrypt_rounds": 4,
            "federation_verify_certificates": False,
            "federation_ip_range_blacklist": [],
            "ip_range_blacklist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "allow_public_rooms_over_federation": True,
            "url_preview_enabled": False,
            **_RATE_LIMITS,
            **self.extra_config,
        }

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "plain",
                    "filename": str(self.log_path),
                }
            },
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def log_tail(self, chars: int = 6000) -> str:
        """The end of Synapse's log and of its stdout/stderr, for failure reports."""
        parts = []
        for path in (self.output_path, self.log_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            if text:
                parts.append(f"--- {path.name} (last {chars} characters) ---\n{text[-chars:]}")
        return "\n".join(parts) or "(Synapse wrote no log)"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config_path = self.directory / "homeserver.yaml"
        config_path.write_text(yaml.safe_dump(self.config()))
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        with self.output_path.open("wb") as output:
            # Started from the event loop's thread: the parent-death signal fires
            # when the thread that forked exits, so never from a worker thread.
            self._process = await asyncio.create_subprocess_exec(
                str(self.python),
                "-m",
                "synapse.app.homeserver",
                "-c",
                str(config_path),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            await self._wait_until_up()
        except BaseException:
            await self.stop()
            raise

    async def _wait_until_up(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise RuntimeError(
                    f"Synapse exited with {self._process.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                async with self.http.get(
                    self.client_url + "/_matrix/client/versions",
                    timeout=aiohttp.ClientTimeout(total=2),
                ) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass  # not listening yet: Synapse is still starting; poll again
            await asyncio.sleep(0.2)
        raise RuntimeError(
            f"Synapse did not answer /_matrix/client/versions within {STARTUP_TIMEOUT:.0f} s:\n"
            + self.log_tail()
        )

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if Synapse has not exited within STOP_TIMEOUT."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> SynapseServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def unique_localpart(self, prefix: str = "user") -> str:
        """A localpart no other test of this run has registered on this Synapse."""
        return f"{prefix}{next(self._localparts)}"

    async def register(self, localpart: str | None = None) -> MatrixClient:
        """Register a user through the client API's dummy flow; a logged-in client."""
        return await register(
            self.http, self.client_url, localpart or self.unique_localpart(), PASSWORD
        )

    async def register_admin(self, localpart: str | None = None) -> MatrixClient:
        """Register a server admin with the shared secret (Synapse's admin register API)."""
        localpart = localpart or self.unique_localpart("admin")
        path = "/_synapse/admin/v1/register"
        status, reply = await call(self.http, self.client_url, "GET", path)
        if status != 200:
            raise MatrixError("GET", path, status, reply)
        mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\0".join([reply["nonce"].encode(), localpart.encode(), PASSWORD.encode()]))
        mac.update(b"\0admin")
        body = {
            "nonce": reply["nonce"],
            "username": localpart,
            "password": PASSWORD,
            "admin": True,
            "mac": mac.hexdigest(),
        }
        status, reply = await call(self.http, self.client_url, "POST", path, json=body)
        if status != 200:
            raise MatrixError("POST", path, status, reply)
        return MatrixClient(
            self.http, self.client_url, reply["user_id"], reply["access_token"], reply["device_id"]
        )
