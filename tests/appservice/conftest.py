"""A real appservice (mautrix-python's `mautrix.appservice`) on loopback, and a
server started with its registration file."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import nio
import pytest
import yaml
from mautrix.appservice import AppService
from mautrix.appservice.state_store import FileASStateStore
from mautrix.types import RoomCreatePreset

from tests.conftest import RunningServer

AS_TOKEN = "as-token-bridge"
HS_TOKEN = "hs-token-bridge"
BRIDGE_ID = "bridge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def registration(url: str | None, **changes: Any) -> dict[str, Any]:
    """The bridge's registration: ghosts @bridge_*, aliases #bridge_*, both exclusive."""
    data: dict[str, Any] = {
        "id": BRIDGE_ID,
        "url": url,
        "as_token": AS_TOKEN,
        "hs_token": HS_TOKEN,
        "sender_localpart": "bridgebot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": "@bridge_.*:localhost"}],
            "aliases": [{"exclusive": True, "regex": "#bridge_.*:localhost"}],
            "rooms": [],
        },
        "rate_limited": False,
        "protocols": ["irc"],
        "io.element.msc4190": True,
    }
    data.update(changes)
    return data


def write_registrations(tmp_path: Path, *registrations: dict[str, Any]) -> list[str]:
    paths = []
    for i, data in enumerate(registrations):
        path = tmp_path / f"registration-{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        paths.append(str(path))
    return paths


@attrs.define
class Bridge:
    """The appservice, the server it is registered with, and what it was asked."""

    appservice: AppService
    hs: RunningServer
    user_queries: list[str] = attrs.Factory(list)
    alias_queries: list[str] = attrs.Factory(list)


@pytest.fixture
async def bridge(server_factory: Any, tmp_path: Path) -> AsyncIterator[Bridge]:
    port = free_port()
    paths = write_registrations(tmp_path, registration(f"http://127.0.0.1:{port}"))
    hs = await server_factory(app_service_config_files=paths)
    appservice = AppService(
        server=hs.url,
        domain="localhost",
        as_token=AS_TOKEN,
        hs_token=HS_TOKEN,
        bot_localpart="bridgebot",
        id=BRIDGE_ID,
        state_store=FileASStateStore(path=str(tmp_path / "mx-state.json"), binary=False),
    )
    found = Bridge(appservice, hs)

    async def query_user(user_id: str) -> dict[str, Any] | None:
        """Creates ghosts named @bridge_ghost_*, as a bridge would on demand."""
        found.user_queries.append(user_id)
        if not user_id.startswith("@bridge_ghost_"):
            return None
        ghost = appservice.intent.user(user_id)
        await ghost.ensure_registered()
        await ghost.set_displayname("Ghost from the other side")
        return {"created": True}

    async def query_alias(alias: str) -> dict[str, Any] | None:
        """Creates the public room of a channel (#bridge_<channel>) on demand."""
        found.alias_queries.append(alias)
        localpart = alias[1:].partition(":")[0]
        if not localpart.startswith("bridge_chan_"):
            return None
        await appservice.intent.create_room(
            alias_localpart=localpart, name=localpart, preset=RoomCreatePreset.PUBLIC
        )
        return {"created": True}

    appservice.query_user = query_user
    appservice.query_alias = query_alias
    await appservice.start(host="127.0.0.1", port=port)
    yield found
    await appservice.stop()


@pytest.fixture
async def people(bridge: Bridge) -> AsyncIterator[Any]:
    """Logged-in matrix-nio clients of people on the bridge's server."""
    clients: list[nio.AsyncClient] = []

    async def make(name: str) -> nio.AsyncClient:
        body = await bridge.hs.register(name)
        client = nio.AsyncClient(bridge.hs.url, body["user_id"])
        client.restore_login(body["user_id"], body["device_id"], body["access_token"])
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
