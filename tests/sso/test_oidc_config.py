"""oidc_providers and sso in the configuration: mistakes stop start-up with a
message naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.config import ConfigError, config_from_dict


def provider(**overrides: Any) -> dict[str, Any]:
    return {
        "idp_id": "kc",
        "idp_name": "Keycloak",
        "issuer": "https://kc.example/realms/x",
        "client_id": "matrix",
        "client_secret": "s",
        **overrides,
    }


def load(*providers: dict[str, Any], **extra: Any) -> Any:
    return config_from_dict(
        {"server_name": "example.test", "oidc_providers": list(providers), **extra}
    )


def test_a_provider_loads_with_defaults():
    config = load(provider(), sso={"client_whitelist": ["https://app.example/"]})
    (p,) = config.oidc_providers
    assert p.discover and p.scopes == ["openid", "profile"]
    assert p.id_token_signing_algs == ["RS256"]
    assert p.user_mapping_provider.localpart_template == "{{ user.preferred_username }}"
    assert config.sso.client_whitelist == ["https://app.example/"]
    assert config.sso.login_via_existing_session is False


@pytest.mark.parametrize(
    ("providers", "key"),
    [
        ([provider(idp_id="bad id")], "oidc_providers[0].idp_id"),
        ([provider(), provider()], "oidc_providers[1].idp_id"),
        ([provider(client_secret=None)], "oidc_providers[0].client_secret"),
        ([provider(client_auth_method="private_key_jwt")], "client_auth_key_file"),
        ([provider(client_auth_method="tls")], "client_auth_method"),
        ([provider(discover=False)], "authorization_endpoint"),
        ([provider(scopes=["profile"])], "scopes"),
        ([provider(id_token_signing_algs=["none"])], "id_token_signing_algs"),
        ([provider(user_profile_method="both")], "user_profile_method"),
        ([provider(attribute_requirements=[{"attribute": "groups"}])], "value"),
        ([provider(unknown_key=1)], "unknown_key"),
    ],
)
def test_mistakes_name_the_key(providers: list[dict[str, Any]], key: str):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load(*[{k: v for k, v in p.items() if v is not None} for p in providers])


def test_a_missing_client_key_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="client_auth_key_file: no such file"):
        load(
            provider(client_auth_method="private_key_jwt", client_auth_key_file="gone.pem"),
            data_dir=str(tmp_path),
        )
