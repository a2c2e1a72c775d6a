"""Secrets given by file or environment variable instead of in the config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from homeserver.config import ConfigError, load_config


def write_config(tmp_path: Path, extra: dict) -> Path:
    data = {"server_name": "example.org", "data_dir": "data", **extra}
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "data").mkdir(exist_ok=True)
    return path


def test_secrets_from_files_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = write_config(
        tmp_path,
        {
            "registration_shared_secret_path": "shared.secret",
            "database": {"dsn_env": "HS_TEST_DSN"},
            "turn": {"uris": ["turn:turn.example.org"], "shared_secret_path": "/abs/missing"},
        },
    )
    (tmp_path / "data" / "shared.secret").write_text("s3cret-from-file\n")
    monkeypatch.setenv("HS_TEST_DSN", "postgresql://hs:pw@db/hs")
    with pytest.raises(ConfigError, match=r"turn.shared_secret_path: cannot read /abs/missing"):
        load_config(config_path)

    data = yaml.safe_load(config_path.read_text())
    del data["turn"]
    config_path.write_text(yaml.safe_dump(data))
    config = load_config(config_path)
    assert config.registration_shared_secret == "s3cret-from-file"
    assert config.database.dsn == "postgresql://hs:pw@db/hs"

    monkeypatch.delenv("HS_TEST_DSN")
    with pytest.raises(ConfigError, match="database.dsn_env: the environment variable HS_TEST_DSN"):
        load_config(config_path)


def test_one_way_only(tmp_path: Path) -> None:
    config_path = write_config(
        tmp_path,
        {"registration_shared_secret": "inline", "registration_shared_secret_path": "x"},
    )
    with pytest.raises(ConfigError, match="one way only"):
        load_config(config_path)


def test_provider_client_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "idp.secret").write_text("provider-secret")
    provider = {
        "idp_id": "corp",
        "idp_name": "Corp",
        "issuer": "https://id.example.org",
        "client_id": "hs",
        "client_secret_path": "idp.secret",
    }
    config = load_config(write_config(tmp_path, {"oidc_providers": [provider]}))
    assert config.oidc_providers[0].client_secret == "provider-secret"
