"""The addresses the well-known documents announce, derived from the server
name (with or without a port, IPv6 literals too) and the listeners' ports,
or taken from the config when set."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from homeserver.__main__ import main
from homeserver.config import ConfigError, config_from_dict, load_config, parse_listen
from homeserver.public_addresses import PublicAddresses, public_addresses, split_server_name


@pytest.mark.parametrize(
    ("server_name", "client_base_url", "federation_address"),
    [
        ("example.org", "http://example.org:8008/", "example.org:8448"),
        ("example.org:8448", "http://example.org:8008/", "example.org:8448"),
        ("example.org:443", "http://example.org:8008/", "example.org:443"),
        ("127.0.0.1", "http://127.0.0.1:8008/", "127.0.0.1:8448"),
        ("127.0.0.1:8448", "http://127.0.0.1:8008/", "127.0.0.1:8448"),
        ("[::1]:8448", "http://[::1]:8008/", "[::1]:8448"),
        ("[::1]", "http://[::1]:8008/", "[::1]:8448"),
        ("[2001:db8::7]:9000", "http://[2001:db8::7]:8008/", "[2001:db8::7]:9000"),
    ],
)
def test_derived_from_the_server_name_and_the_listeners(
    server_name: str, client_base_url: str, federation_address: str
) -> None:
    assert public_addresses(server_name, client_port=8008, federation_port=8448) == (
        PublicAddresses(client_base_url, federation_address)
    )


@pytest.mark.parametrize("server_name", ["example.org", "127.0.0.1:8448", "[::1]:8448", "[::1]"])
def test_configured_addresses_win(server_name: str) -> None:
    addresses = public_addresses(
        server_name,
        client_port=8008,
        federation_port=8448,
        public_baseurl="https://matrix.example.org/",
        federation_public_address="matrix.example.org:443",
    )
    assert addresses == PublicAddresses("https://matrix.example.org/", "matrix.example.org:443")


def test_a_public_baseurl_gets_its_trailing_slash() -> None:
    addresses = public_addresses(
        "example.org",
        client_port=8008,
        federation_port=8448,
        public_baseurl="https://example.org/matrix",
    )
    assert addresses.client_base_url == "https://example.org/matrix/"
    assert addresses.federation_address == "example.org:8448"


@pytest.mark.parametrize(
    ("server_name", "parts"),
    [
        ("example.org", ("example.org", None)),
        ("example.org:1", ("example.org", 1)),
        ("[::1]:65535", ("[::1]", 65535)),
        ("[::ffff:127.0.0.1]", ("[::ffff:127.0.0.1]", None)),
    ],
)
def test_split_server_name(server_name: str, parts: tuple[str, int | None]) -> None:
    assert split_server_name(server_name) == parts


@pytest.mark.parametrize(
    "server_name",
    [
        "[::1",
        "[nope]:8448",
        "[::1]8448",
        "example.org:",
        "example.org:0",
        "example.org:70000",
        "example.org:84a8",
        ":8448",
        "a b",
        "::1",
    ],
)
def test_a_bad_server_name_stops_the_config_naming_the_key(server_name: str) -> None:
    with pytest.raises(ValueError):
        split_server_name(server_name)
    with pytest.raises(ConfigError) as err:
        config_from_dict({"server_name": server_name})
    assert "server_name" in str(err.value)


def test_the_generated_config_announces_reachable_addresses(tmp_path: Path) -> None:
    """`generate-config` with a server name carrying the federation port."""
    path = tmp_path / "homeserver.yaml"
    assert main(["generate-config", "--config", str(path), "--server-name", "127.0.0.1:8448"]) == 0
    config = load_config(path)
    addresses = public_addresses(
        config.server_name,
        client_port=parse_listen(config.client_listen)[1],
        federation_port=parse_listen(config.federation_listen)[1],
        public_baseurl=config.public_baseurl,
        federation_public_address=config.federation_public_address,
    )
    assert addresses == PublicAddresses("http://127.0.0.1:8008/", "127.0.0.1:8448")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_well_known_documents_over_http(server_factory: Any) -> None:
    """A client (Cinny) reads the base URL and connects to it."""
    port = _free_port()
    hs = await server_factory(server_name="127.0.0.1:8448", client_listen=f"127.0.0.1:{port}")
    status, body = await hs.request("GET", "/.well-known/matrix/client")
    assert status == 200, body
    assert body["m.homeserver"] == {"base_url": f"http://127.0.0.1:{port}/"}
    status, body = await hs.request("GET", "/.well-known/matrix/server")
    assert (status, body) == (200, {"m.server": "127.0.0.1:8448"})
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/_matrix/client/versions") as resp,
    ):
        assert resp.status == 200
        assert "versions" in await resp.json()
