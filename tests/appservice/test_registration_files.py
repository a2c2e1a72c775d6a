"""Registration files: what loads, and every way a bad one stops start-up.

Each bad file must stop the server with a ConfigError that names the file and
the field, so an operator knows what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from homeserver.appservice.registration import load_appservices
from homeserver.config import ConfigError
from homeserver.server import HomeServer
from tests.conftest import make_config


def registration(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "bridge",
        "url": "http://127.0.0.1:9/",
        "as_token": "as-secret",
        "hs_token": "hs-secret",
        "sender_localpart": "bridgebot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": "@bridge_.*:localhost"}],
            "aliases": [{"exclusive": False, "regex": "#bridge_.*:localhost"}],
            "rooms": [],
        },
        "rate_limited": False,
        "protocols": ["irc"],
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


_DROP = object()


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_a_full_registration_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        registration(
            receive_ephemeral=None,
            **{
                "de.sorunome.msc2409.push_ephemeral": True,
                "org.matrix.msc3202": True,
                "io.element.msc4190": True,
            },
        ),
    )
    (service,) = load_appservices([path], "localhost").all()
    assert service.id == "bridge"
    assert service.sender == "@bridgebot:localhost"
    assert service.receive_ephemeral and service.device_masquerading
    assert service.device_management and not service.rate_limited
    assert service.protocols == ("irc",)
    assert service.is_user_in_namespace("@bridge_alice:localhost")
    assert service.is_user_in_namespace("@bridgebot:localhost")
    # fullmatch: a namespace never claims ids it only starts or ends.
    assert not service.is_user_in_namespace("@bridge_alice:localhost.evil")
    assert not service.is_user_in_namespace("@alice:localhost")
    assert service.is_alias_in_namespace("#bridge_x:localhost")
    assert not service.is_room_in_namespace("!a:localhost")


def test_url_null_means_no_pushes(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", registration(url=None))
    (service,) = load_appservices([path], "localhost").all()
    assert service.url is None


BAD_FILES = [
    ("id: [unclosed", "not valid YAML"),
    ("- a list\n", "a registration must be a YAML mapping"),
    (registration(id=_DROP), "id: required"),
    (registration(id=7), "id: expected a non-empty string"),
    (registration(url=_DROP), "url: required"),
    (registration(url="ftp://x"), "url: expected an http"),
    (registration(as_token=_DROP), "as_token: required"),
    (registration(hs_token=""), "hs_token: expected a non-empty string"),
    (registration(hs_token="as-secret"), "hs_token: must differ from as_token"),
    (registration(sender_localpart=_DROP), "sender_localpart: required"),
    (registration(sender_localpart="Bad Bot"), "sender_localpart: not a valid"),
    (registration(namespaces=_DROP), "namespaces: required"),
    (registration(namespaces=["users"]), "namespaces: expected a mapping"),
    (registration(namespaces={"people": []}), "namespaces.people: unknown"),
    (registration(namespaces={"users": {"regex": "x"}}), "namespaces.users: expected a list"),
    (
        registration(namespaces={"users": [{"exclusive": True, "regex": "@(unclosed"}]}),
        "namespaces.users[0].regex: not a valid regular expression",
    ),
    (
        registration(namespaces={"aliases": [{"exclusive": True}]}),
        "namespaces.aliases[0].regex: required",
    ),
    (
        registration(namespaces={"rooms": [{"regex": "!.*"}]}),
        "namespaces.rooms[0].exclusive: required",
    ),
    (registration(rate_limited="no"), "rate_limited: expected true or false"),
    (registration(protocols="irc"), "protocols: expected a list"),
    (registration(receive_ephemeral=1), "receive_ephemeral: expected true or false"),
    (
        registration(**{"org.matrix.msc3202": "yes"}),
        "org.matrix.msc3202: expected true or false",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_a_bad_file_names_file_and_field(tmp_path: Path, data: Any, message: str) -> None:
    path = write(tmp_path, "bad.yaml", data)
    with pytest.raises(ConfigError) as err:
        load_appservices([path], "localhost")
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_appservices([tmp_path / "nothere.yaml"], "localhost")


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (registration(as_token="a2", hs_token="h2"), "id: 'bridge' is also the id in"),
        (registration(id="b2", hs_token="h2"), "as_token: the same token is the as_token of"),
        (registration(id="b2", as_token="a2"), "hs_token: the same token is the hs_token of"),
        (
            registration(id="b2", as_token="hs-secret", hs_token="h2"),
            "as_token: the same token is the hs_token of",
        ),
    ],
)
def test_duplicates_across_files(tmp_path: Path, second: Any, message: str) -> None:
    first = write(tmp_path, "first.yaml", registration())
    other = write(tmp_path, "second.yaml", second)
    with pytest.raises(ConfigError) as err:
        load_appservices([first, other], "localhost")
    assert str(other) in str(err.value) and message in str(err.value)
    assert str(first) in str(err.value)


def test_the_server_refuses_to_start(tmp_path: Path) -> None:
    """The check runs when the server is built, before any database work."""
    write(tmp_path, "bad.yaml", registration(as_token=_DROP))
    config = make_config(
        "postgresql://unused/none", tmp_path, app_service_config_files=["bad.yaml"]
    )
    with pytest.raises(ConfigError, match=r"bad\.yaml: as_token: required"):
        HomeServer(config)
