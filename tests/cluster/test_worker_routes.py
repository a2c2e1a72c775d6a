"""`homeserver worker-routes`: the routing table covers every endpoint the
code declares, once per listener, and the nginx configuration made from it
sends each endpoint where the table says (checked by reading the map back,
by `nginx -t`, and by a deployment of two workers behind nginx answering on
the right worker)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import ssl
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from homeserver.cluster.nginx import STICKY_UPSTREAM, nginx_config, upstream_name
from homeserver.cluster.roles import Role
from homeserver.cluster.routes import Listener, declared_endpoints, route_table, sample_path
from homeserver.config import load_config
from tests.cluster.deployment import ALL_ROLES, deployment
from tests.test_process import free_port, run_cli

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
needs_nginx = pytest.mark.skipif(
    NGINX is None,
    reason="nginx is not installed (apt-get install nginx-light; `make test` does it as root)",
)
WRITER_ROLES = [r for r in ALL_ROLES if r != "client"]


def test_every_declared_endpoint_is_routed_exactly_once_per_listener():
    routes = route_table()
    declared = declared_endpoints()
    assert len(declared) > 300  # the scan found the handlers
    keys = Counter((r.listener, r.method, r.paths) for r in routes)
    assert keys == Counter((listener, method, paths) for listener, method, paths, _ in declared)
    assert all(count == 1 for count in keys.values())
    # Each path (with its method) is matched by its own row's regex.
    for route in routes:
        for template in route.paths:
            assert re.match(route.regex, sample_path(template)), (route, template)


def role(listener: Listener, method: str, path: str) -> tuple[Role, bool]:
    route = next(
        r
        for r in route_table()
        if r.listener is listener and r.method == method and path in r.paths
    )
    return route.role, route.sticky


def test_the_rules_put_each_kind_of_request_on_its_role():
    client = Listener.CLIENT
    assert role(client, "GET", "/_matrix/client/v3/sync") == (Role.CLIENT, True)
    assert role(client, "POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync") == (
        Role.CLIENT,
        True,
    )
    assert role(client, "GET", "/_matrix/client/v3/rooms/{roomId}/messages") == (Role.CLIENT, False)
    assert role(client, "POST", "/_matrix/client/v3/keys/query")[0] is Role.CLIENT
    assert role(client, "GET", "/_matrix/client/v1/media/download/{serverName}/{mediaId}")[0] is (
        Role.CLIENT
    )
    sent = "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
    assert role(client, "PUT", sent)[0] is Role.EVENT_PERSISTER
    assert role(client, "POST", "/_matrix/client/v3/createRoom")[0] is Role.EVENT_PERSISTER
    assert role(client, "PUT", "/_matrix/client/v3/rooms/{roomId}/typing/{userId}")[0] is (
        Role.CLIENT
    )
    assert role(client, "POST", "/_matrix/media/v3/upload")[0] is Role.MEDIA
    assert role(client, "GET", "/_synapse/admin/v1/server_version")[0] is Role.BACKGROUND
    federation = Listener.FEDERATION
    assert role(federation, "PUT", "/_matrix/federation/v1/send/{txnId}")[0] is (
        Role.FEDERATION_INBOUND
    )


def write_config(database: str, tmp_path: Path):
    return deployment(database, tmp_path / "data", {"reader": ["client"], "writer": WRITER_ROLES})


def map_rows(text: str, listener: Listener) -> tuple[str, list[tuple[re.Pattern[str], str]]]:
    """The default and the regex rows of a listener's map in the nginx config."""
    block = text.split(f"$hs_{listener.value}_upstream {{", 1)[1].split("}", 1)[0]
    default = re.search(r"default (\S+);", block)
    assert default is not None
    rows = [(re.compile(m.group(1)), m.group(2)) for m in re.finditer(r'"~(.+)" (\S+);', block)]
    return default.group(1), rows


async def test_the_nginx_map_sends_every_endpoint_where_the_table_says(
    database: str, tmp_path: Path
):
    cluster = write_config(database, tmp_path)
    text = nginx_config(load_config(cluster.config_path), route_table())
    for listener in Listener:
        default, rows = map_rows(text, listener)
        for route in (r for r in route_table() if r.listener is listener):
            want = STICKY_UPSTREAM if route.sticky else upstream_name(route.role, listener)
            for template in route.paths:
                key = f"{route.method} {sample_path(template)}"
                got = next((target for regex, target in rows if regex.match(key)), default)
                assert got == want, (key, got, want)
    # Upstreams name the workers' listeners: readers for sync, the writer for sends.
    reader, writer = cluster.workers["reader"], cluster.workers["writer"]
    sticky = text.split(f"upstream {STICKY_UPSTREAM} {{", 1)[1].split("}", 1)[0]
    assert f"server {reader.client};" in sticky and "hash $hs_poller consistent;" in sticky
    persisters = text.split("upstream hs_client_event_persister {", 1)[1].split("}", 1)[0]
    assert f"server {writer.client};" in persisters and reader.client not in persisters


async def test_worker_routes_command(database: str, tmp_path: Path):
    cluster = write_config(database, tmp_path)
    code, out = await run_cli("worker-routes", "--config", str(cluster.config_path))
    assert code == 0, out
    assert "GET    /_matrix/client/r0/sync | /_matrix/client/v3/sync -> client (sticky" in out
    assert "PUT    /_matrix/federation/v1/send/{txnId} -> federation_inbound: writer" in out
    single = tmp_path / "single.yaml"
    single.write_text("server_name: localhost\n")
    code, out = await run_cli("worker-routes", "--config", str(single), "--nginx")
    assert code == 1 and "names no workers" in out


@needs_nginx
async def test_two_workers_behind_nginx_answer_on_the_right_worker(database: str, tmp_path: Path):
    assert NGINX is not None
    cluster = write_config(database, tmp_path)
    code, out = await run_cli("worker-routes", "--config", str(cluster.config_path), "--nginx")
    assert code == 0, out
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(out)
    settings = f"pid {prefix}/nginx.pid; error_log {prefix}/logs/error.log;"
    check = await asyncio.create_subprocess_exec(
        NGINX, "-t", "-p", str(prefix), "-c", str(conf), "-g", settings,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    checked, _ = await check.communicate()
    assert check.returncode == 0, checked.decode()

    nginx = None
    try:
        await cluster.start("reader", "writer")
        nginx = await asyncio.create_subprocess_exec(
            NGINX, "-p", str(prefix), "-c", str(conf), "-g", f"daemon off; {settings}",
        )  # fmt: skip
        base = f"http://{cluster.public_client}"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(base + "/_matrix/client/versions") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)

            async def call(method: str, path: str, worker: str, **kwargs) -> dict:
                async with http.request(method, base + path, **kwargs) as resp:
                    assert resp.status == 200, (path, resp.status, await resp.text())
                    assert resp.headers["X-Homeserver-Worker"] == worker, path
                    return await resp.json()

            user = f"u{uuid.uuid4().hex[:8]}"
            body = {
                "username": user,
                "password": "a long password",
                "auth": {"type": "m.login.dummy"},
            }
            token = (await call("POST", "/_matrix/client/v3/register", "reader", json=body))[
                "access_token"
            ]
            auth = {"Authorization": f"Bearer {token}"}
            room = (
                await call("POST", "/_matrix/client/v3/createRoom", "writer", json={}, headers=auth)
            )["room_id"]
            sent = await call(
                "PUT",
                f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
                "writer",
                json={"msgtype": "m.text", "body": "through nginx"},
                headers=auth,
            )
            messages = await call(
                "GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b", "reader", headers=auth
            )
            assert sent["event_id"] in [e["event_id"] for e in messages["chunk"]]
            await call("GET", "/_matrix/client/v3/sync?timeout=0", "reader", headers=auth)
            await call(
                "POST", "/_matrix/media/v3/upload", "writer", data=b"bytes",
                headers={**auth, "Content-Type": "application/octet-stream"},
            )  # fmt: skip
            # Federation: through nginx's TLS to the writer's federation listener.
            insecure = ssl.create_default_context()
            insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
            url = f"https://{cluster.public_federation}/_matrix/federation/v1/version"
            async with http.get(url, ssl=insecure) as resp:
                assert resp.status == 200
                assert resp.headers["X-Homeserver-Worker"] == "writer"
    finally:
        if nginx is not None and nginx.returncode is None:
            nginx.terminate()
            await nginx.wait()
        await cluster.stop()


async def test_the_table_covers_every_route_a_running_server_serves(server_factory):
    """Against the routes aiohttp really has (OAuth on, whose endpoints are
    mounted only then): the table and what is served are the same set."""
    port = free_port()
    hs = await server_factory(
        client_listen=f"127.0.0.1:{port}",
        public_baseurl=f"http://127.0.0.1:{port}/",
        oauth={"enabled": True},
    )
    table = {
        # aiohttp's canonical form leaves out a parameter's regex.
        (route.listener, route.method, re.sub(r"\{(\w+):[^{}]*\}", r"{\1}", path))
        for route in route_table()
        for path in route.paths
    }
    served = set()
    for runner in hs.server._runners:
        paths = {resource.canonical for resource in runner.app.router.resources()}
        if "/metrics" in paths:
            continue
        listener = Listener.FEDERATION if "/_matrix/key/v2/server" in paths else Listener.CLIENT
        for route in runner.app.router.routes():
            if route.method in ("HEAD", "OPTIONS") or route.resource is None:
                continue
            served.add((listener, route.method, route.resource.canonical))
    assert len(served) > 300
    assert served - table == set()
    assert table - served == set()
