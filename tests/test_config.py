"""Configuration loading: strict keys and types, with errors naming the key."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from homeserver.__main__ import main
from homeserver.config import ConfigError, config_from_dict, load_config


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"server_name": "x", "enable_registraton": True}, "enable_registraton"),
        (
            {"server_name": "x", "rate_limits": {"login": {"per_second": 1, "burst": 2}}},
            "rate_limits.login",
        ),
        ({"server_name": "x", "bcrypt_rounds": "12"}, "bcrypt_rounds"),
        ({"server_name": "x", "enable_registration": "yes"}, "enable_registration"),
        ({"server_name": "x", "database": {"dsn": 5}}, "database.dsn"),
        ({"server_name": "x", "client_listen": "8008"}, "client_listen"),
        ({"server_name": "x", "default_room_version": "99"}, "default_room_version"),
        ({}, "server_name"),
        ({"server_name": "x", "turn": {"uris": "turn:a"}}, "turn.uris"),
        ({"server_name": "x", "turn": {"uris": [1]}}, "turn.uris"),
        ({"server_name": "x", "rtc_foci": [5]}, "rtc_foci"),
        ({"server_name": "x", "presence": {"sync_timeout_ms": 10}}, "presence.sync_timeout_ms"),
        ({"server_name": "x", "presence": {"idle_timeout_ms": 0}}, "presence.idle_timeout_ms"),
        ({"server_name": "x", "presence": {"sync_timeout": 10}}, "config.presence"),
    ],
)
def test_bad_config_names_the_key(data, named):
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert named in str(err.value)


def test_generate_config_writes_a_loadable_config_and_keys(tmp_path: Path):
    path = tmp_path / "conf" / "homeserver.yaml"
    assert (
        main(
            [
                "generate-config",
                "--config",
                str(path),
                "--server-name",
                "example.test",
                "--client-listen",
                "127.0.0.1:18008",
                "--federation-listen",
                "127.0.0.1:18448",
                "--database-dsn",
                "postgresql://u@localhost/db",
                "--open-registration",
                "--disable-rate-limits",
                "--federation-insecure",
            ]
        )
        == 0
    )
    config = load_config(path)
    assert config.server_name == "example.test"
    assert config.data_dir == str(path.parent.resolve())
    assert config.client_listen == "127.0.0.1:18008"
    assert config.database.dsn == "postgresql://u@localhost/db"
    assert config.enable_registration and not config.registration_requires_token
    assert not config.rate_limits.enabled and config.federation_insecure
    assert config.registration_shared_secret and len(config.registration_shared_secret) >= 32
    for name in ("signing.key", "tls.crt", "tls.key"):
        assert (path.parent / name).exists()
    assert (path.parent / "signing.key").read_text().startswith("ed25519 a_")
    # It never overwrites a config by accident.
    assert main(["generate-config", "--config", str(path)]) == 1
    assert load_config(path).server_name == "example.test"


def test_defaults_are_closed(tmp_path: Path):
    path = tmp_path / "homeserver.yaml"
    assert main(["generate-config", "--config", str(path)]) == 0
    config = load_config(path)
    assert not config.enable_registration and config.registration_requires_token
    assert config.rate_limits.enabled and not config.federation_insecure


def test_example_config_documents_every_key():
    """config.example.yaml loads, and names every key the server knows."""
    example = Path(__file__).resolve().parents[1] / "config.example.yaml"
    config = load_config(example)
    text = example.read_text()

    def keys(cls, prefix=""):
        for field in attrs.fields(cls):
            yield prefix + field.name
            if attrs.has(type(field.default)):
                yield from keys(type(field.default), prefix + field.name + ".")

    for key in keys(type(config)):
        assert f"{key.rsplit('.', 1)[-1]}:" in text, key
