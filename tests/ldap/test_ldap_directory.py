"""The directory's failure modes and transport: down, hanging, failover, TLS, escaping."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeserver.accounts.ldap.directory import DirectoryUnavailable, LdapDirectory
from homeserver.config import ConfigError
from tests.conftest import make_config
from tests.fake_identity_server import CaFiles
from tests.ldap.conftest import ldap_config
from tests.ldap.slapd import PEOPLE, Slapd, free_port
from tests.ldap.test_ldap_sign_in import account_count, login


def directory(slapd: Slapd, tmp_path: Path, **overrides: Any) -> LdapDirectory:
    config = make_config("postgresql://unused", tmp_path, ldap=ldap_config(slapd, **overrides))
    assert config.ldap is not None
    return LdapDirectory(config.ldap, config.ldap.tls_ca_file)


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A port that accepts connections and never answers, like a hung directory."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"ldap://127.0.0.1:{s.getsockname()[1]}"


async def test_directory_down_is_a_temporary_error_and_back_up_works(server_factory, slapd):
    hs = await server_factory(ldap=ldap_config(slapd))
    before = await account_count(hs)
    slapd.stop()
    try:
        status, body = await login(hs, "bob", "bob-pw")
        assert (status, body["errcode"]) == (503, "M_UNKNOWN")
        assert "directory is unavailable" in body["error"]
        # A wrong password is no better while it is down.
        status, body = await login(hs, "bob", "wrong")
        assert status == 503
        assert await account_count(hs) == before
    finally:
        slapd.start()
    status, body = await login(hs, "bob", "bob-pw")
    assert status == 200 and body["user_id"] == "@bob:localhost"


async def test_local_password_still_works_while_the_directory_is_down(server_factory, slapd):
    hs = await server_factory(ldap=ldap_config(slapd))
    await hs.register("hana", "hana-pw")
    slapd.stop()
    try:
        status, body = await login(hs, "hana", "hana-pw")
        assert status == 200 and body["user_id"] == "@hana:localhost"
    finally:
        slapd.start()


async def test_a_hanging_directory_times_out(server_factory, slapd, silent_listener):
    hs = await server_factory(ldap=ldap_config(slapd, uri=[silent_listener], timeout=1))
    started = time.monotonic()
    status, body = await login(hs, "alice", "alice-pw")
    assert (status, body["errcode"]) == (503, "M_UNKNOWN")
    assert time.monotonic() - started < 8
    # The server kept serving while it waited.
    status, _ = await hs.request("GET", "/_matrix/client/versions")
    assert status == 200


async def test_failover_to_the_next_uri(server_factory, slapd):
    dead = f"ldap://127.0.0.1:{free_port()}"
    hs = await server_factory(ldap=ldap_config(slapd, uri=[dead, slapd.uri]))
    status, body = await login(hs, "alice", "alice-pw")
    assert status == 200, body


async def test_ldaps_with_the_directory_ca(server_factory, slapd, ldap_ca: CaFiles):
    hs = await server_factory(
        ldap=ldap_config(slapd, uri=[slapd.ldaps_uri], tls_ca_file=str(ldap_ca.ca_file))
    )
    status, body = await login(hs, "alice", "alice-pw")
    assert status == 200, body


async def test_start_tls_with_the_directory_ca(server_factory, slapd, ldap_ca: CaFiles):
    hs = await server_factory(
        ldap=ldap_config(slapd, start_tls=True, tls_ca_file=str(ldap_ca.ca_file))
    )
    status, body = await login(hs, "bob", "bob-pw")
    assert status == 200, body


async def test_an_untrusted_certificate_is_never_a_sign_in(server_factory, slapd):
    before = None
    for overrides in ({"uri": [slapd.ldaps_uri]}, {"start_tls": True}):
        hs = await server_factory(ldap=ldap_config(slapd, **overrides))
        before = before if before is not None else await account_count(hs)
        status, body = await login(hs, "alice", "alice-pw")
        assert (status, body["errcode"]) == (503, "M_UNKNOWN"), overrides
        assert await account_count(hs) == before


async def test_tls_checks_the_host_name(slapd, ldap_ca: CaFiles, tmp_path):
    """The certificate names 127.0.0.1 only: reaching it as localhost is refused
    (unless checking is off, for test directories)."""
    localhost = f"ldaps://localhost:{slapd.ldaps_port}"
    ca = str(ldap_ca.ca_file)
    checked = directory(slapd, tmp_path, uri=[localhost], tls_ca_file=ca)
    with pytest.raises(DirectoryUnavailable):
        await checked.authenticate("alice", "alice-pw")
    starttls = directory(
        slapd, tmp_path, uri=[f"ldap://localhost:{slapd.port}"], start_tls=True, tls_ca_file=ca
    )
    with pytest.raises(DirectoryUnavailable):
        await starttls.authenticate("alice", "alice-pw")
    unchecked = directory(slapd, tmp_path, uri=[localhost], tls_verify=False)
    assert await unchecked.authenticate("alice", "alice-pw") is not None


async def test_filter_and_dn_input_is_escaped(slapd, tmp_path):
    """Below the localpart check of /login: the directory layer itself escapes."""
    search = directory(slapd, tmp_path, user_filter=None)
    assert (await search.authenticate("alice", "alice-pw")) is not None
    for name in ("*", "al*", "alice)(uid=*", "*)(|(uid=*", "alice\x00", "\\61lice"):
        assert await search.authenticate(name, "alice-pw") is None, name
    direct = directory(
        slapd,
        tmp_path,
        bind_dn=None,
        bind_password=None,
        bind_template=f"uid={{localpart}},{PEOPLE}",
    )
    assert (await direct.authenticate("alice", "alice-pw")) is not None
    for name in ("alice,ou=people", "alice+cn=x", "*", "alice)(uid=*"):
        assert await direct.authenticate(name, "alice-pw") is None, name
    # An empty password would bind anonymously: never asked.
    assert await direct.authenticate("alice", "") is None


@pytest.mark.parametrize(
    ("ldap", "message"),
    [
        ({"uri": [], "base": "dc=x"}, "ldap.uri"),
        ({"uri": ["http://x"], "base": "dc=x"}, "ldap.uri"),
        ({"uri": ["ldap://x"]}, "ldap.base"),
        ({"uri": ["ldap://x"], "base": "dc=x", "bind_dn": "cn=a"}, "bind_password"),
        ({"uri": ["ldap://x"], "base": "dc=x", "bind_dn": "cn=a", "bind_password": ""}, "empty"),
        ({"uri": ["ldap://x"], "base": "dc=x", "bind_template": "uid=x"}, "{localpart}"),
        ({"uri": ["ldap://x"], "base": "dc=x", "user_filter": "a=b"}, "user_filter"),
        ({"uri": ["ldap://x"], "base": "dc=x", "tls_ca_file": "nope.pem"}, "tls_ca_file"),
        ({"uri": ["ldap://x"], "base": "dc=x", "timeout": 0}, "timeout"),
    ],
)
def test_config_mistakes_are_named(tmp_path, ldap, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        make_config("postgresql://unused", tmp_path, ldap=ldap)
