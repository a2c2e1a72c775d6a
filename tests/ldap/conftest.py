"""One slapd for the LDAP tests (plain, StartTLS and LDAPS), and servers using it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_identity_server import CaFiles, make_ca
from tests.ldap.slapd import PEOPLE, SEARCHER_DN, SEARCHER_PASSWORD, Slapd, slapd_available


@pytest.fixture(scope="session")
def ldap_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    """A self-signed CA and a certificate for 127.0.0.1 that slapd serves."""
    return make_ca(tmp_path_factory.mktemp("ldap-ca"))


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory, ldap_ca: CaFiles) -> Iterator[Slapd]:
    if not slapd_available():
        pytest.skip("slapd is not installed (Debian: apt-get install slapd ldap-utils)")
    server = Slapd(
        tmp_path_factory.mktemp("slapd"),
        tls=(ldap_ca.ca_file, ldap_ca.cert_file, ldap_ca.key_file),
    )
    server.start()
    try:
        server.populate()
        yield server
    finally:
        server.stop()


def ldap_config(slapd: Slapd, **overrides: Any) -> dict[str, Any]:
    """Search-then-bind with the service account, staff only."""
    config: dict[str, Any] = {
        "uri": [slapd.uri],
        "base": PEOPLE,
        "bind_dn": SEARCHER_DN,
        "bind_password": SEARCHER_PASSWORD,
        "user_filter": "(employeeType=staff)",
        "attributes": {"uid": "uid", "name": "displayName", "mail": "mail"},
        "connect_timeout": 1,
        "timeout": 2,
    }
    config.update(overrides)
    return config


@pytest.fixture
def ca_path(ldap_ca: CaFiles) -> Path:
    return ldap_ca.ca_file
