"""Provider options beyond the defaults: private_key_jwt client
authentication, claims from the userinfo endpoint, and a back-channel logout
naming one provider session (`sid`) rather than the whole subject."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from tests.sso.conftest import free_port, login_token_of
from tests.sso.providers import CraftedProvider
from tests.sso.test_upstream_checks import crafted_config, crafted_sign_in


async def login(hs: Any, page: Any) -> dict:
    assert page.location is not None, page
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.token", "token": login_token_of(page.location)},
    )
    assert status == 200, body
    return body


async def test_private_key_jwt_client_authentication(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any, tmp_path: Any
):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "client.key").write_bytes(pem)
    crafted_provider.client_key = RSAKey.import_key(pem)
    config = crafted_config(
        crafted_provider, client_auth_method="private_key_jwt", client_auth_key_file="client.key"
    )
    del config["client_secret"]
    hs = await sso_factory([config])
    session = await login(hs, await crafted_sign_in(hs, browser_factory, crafted_provider))
    assert session["user_id"] == "@crafted:localhost"
    assert crafted_provider.client_auth_seen == ["private_key_jwt"]


async def test_userinfo_claims_are_mapped(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    hs = await sso_factory(
        [
            crafted_config(
                crafted_provider,
                user_profile_method="userinfo_endpoint",
                user_mapping_provider={
                    "localpart_template": "{{ user.nickname }}",
                    "display_name_template": "{{ user.given_name }} {{ user.family_name }}",
                },
            )
        ]
    )
    crafted_provider.userinfo_claims = {"nickname": "Info", "given_name": "In", "family_name": "Fo"}
    session = await login(hs, await crafted_sign_in(hs, browser_factory, crafted_provider))
    assert session["user_id"] == "@info:localhost"
    status, profile = await hs.request("GET", "/_matrix/client/v3/profile/@info:localhost")
    assert profile["displayname"] == "In Fo"

    # Userinfo for another subject than the ID token's is refused.
    crafted_provider.userinfo_claims = {"sub": "someone-else"}
    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    assert page.status == 400 and "another subject" in page.text


async def test_logout_by_sid_ends_only_that_provider_session(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    hs = await sso_factory([crafted_config(crafted_provider)])
    crafted_provider.claims = {"sid": "session-1"}
    first = await login(hs, await crafted_sign_in(hs, browser_factory, crafted_provider))
    crafted_provider.claims = {"sid": "session-2"}
    second = await login(hs, await crafted_sign_in(hs, browser_factory, crafted_provider))

    status, body = await hs.request(
        "POST",
        "/_homeserver/upstream/crafted/backchannel_logout",
        data=f"logout_token={crafted_provider.logout_token(sid='session-1')}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    for session, expected in ((first, 401), (second, 200)):
        status, _ = await hs.request(
            "GET", "/_matrix/client/v3/account/whoami", token=session["access_token"]
        )
        assert status == expected


async def test_explicit_endpoints_without_discovery(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    url = crafted_provider.url
    hs = await sso_factory(
        [
            crafted_config(
                crafted_provider,
                discover=False,
                authorization_endpoint=url + "/authorize",
                token_endpoint=url + "/token",
                jwks_uri=url + "/jwks",
            )
        ]
    )
    session = await login(hs, await crafted_sign_in(hs, browser_factory, crafted_provider))
    assert session["user_id"] == "@crafted:localhost"


async def test_unreachable_provider_shows_an_error_page(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    gone = dict(crafted_config(crafted_provider), issuer=f"http://127.0.0.1:{free_port()}")
    hs = await sso_factory([gone])
    page = await browser_factory(hs.url).go(f"{hs.url}/_homeserver/upstream/crafted/start?next=/")
    assert page.status == 502 and "cannot be reached" in page.text
    assert await hs.pool.fetchval("SELECT count(*) FROM upstream_auth_requests") == 0


async def test_deactivated_account_cannot_sign_in_again(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    hs = await sso_factory([crafted_config(crafted_provider)])
    session = await login(hs, await crafted_sign_in(hs, browser_factory, crafted_provider))
    status, _ = await hs.request(
        "POST",
        "/_synapse/admin/v1/deactivate/" + session["user_id"],
        token=(await admin_token(hs)),
        json={},
    )
    assert status == 200
    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    assert page.status == 400 and "deactivated" in page.text
    assert await hs.pool.fetchval("SELECT count(*) FROM login_tokens") == 0


async def admin_token(hs: Any) -> str:
    admin = await hs.register("ssoadmin", "pw")
    await hs.pool.execute("UPDATE users SET admin = TRUE WHERE user_id = $1", admin["user_id"])
    return admin["access_token"]
