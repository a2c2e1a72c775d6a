"""What an upstream sign-in refuses, and that a refused one creates nothing:
a user without a required claim, a wrong, replayed or foreign state, and
forged, expired or misdirected ID tokens."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import quote

from joserfc.jwk import RSAKey

from tests.sso.conftest import TRUSTED_CLIENT, login_token_of, mock_provider_config
from tests.sso.providers import CraftedProvider, MockProvider
from tests.sso.test_legacy_sso import new_sub, set_claims


async def counts(hs: Any) -> tuple[int, int, int]:
    return (
        await hs.pool.fetchval("SELECT count(*) FROM users"),
        await hs.pool.fetchval("SELECT count(*) FROM upstream_links"),
        await hs.pool.fetchval("SELECT count(*) FROM browser_sessions"),
    )


def start_url(hs: Any, idp_id: str) -> str:
    return f"{hs.url}/_matrix/client/v3/login/sso/redirect/{idp_id}?redirectUrl={quote(TRUSTED_CLIENT)}"


async def test_attribute_requirements_refuse_a_user_without_the_group(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    provider = mock_provider_config(
        mock_provider, attribute_requirements=[{"attribute": "groups", "value": "staff"}]
    )
    hs = await sso_factory([provider])
    outsider, member = new_sub(), new_sub()
    await set_claims(
        mock_provider, outsider, preferred_username="out" + secrets.token_hex(2), groups=["guests"]
    )
    await set_claims(
        mock_provider, member, preferred_username="in" + secrets.token_hex(2), groups=["x", "staff"]
    )
    before = await counts(hs)
    page = await browser_factory(hs.url, mock_provider.url).sign_in_at_mock(
        start_url(hs, "mock"), outsider
    )
    assert page.status == 400 and page.location is None
    assert "missing the required &#x27;groups&#x27;" in page.text
    assert await counts(hs) == before

    page = await browser_factory(hs.url, mock_provider.url).sign_in_at_mock(
        start_url(hs, "mock"), member
    )
    assert page.location is not None and "loginToken=" in page.location


async def test_state_is_single_use_and_bound_to_the_browser(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    await set_claims(mock_provider, sub, preferred_username="st" + secrets.token_hex(2))
    before = await counts(hs)

    # The provider's answer, caught before the browser follows it.
    browser = browser_factory(hs.url)
    form = await browser.go(start_url(hs, "mock"))
    assert form.location is not None and form.location.startswith(mock_provider.url)
    answer = await browser_factory().go(form.location, method="POST", data={"sub": sub})
    callback = answer.location
    assert callback is not None and "/_homeserver/upstream/mock/callback?" in callback

    # Another browser (no cookie of this sign-in) cannot complete it...
    stranger = await browser_factory(hs.url).go(callback)
    assert stranger.status == 400 and "another browser" in stranger.text
    assert await counts(hs) == before
    # ...and it was spent by trying: the state is used once.
    replay = await browser.go(callback)
    assert replay.status == 400 and "already used" in replay.text
    # A made-up state is unknown.
    forged = await browser.go(callback.replace("state=", "state=x"))
    assert forged.status == 400
    missing = await browser.go(f"{hs.url}/_homeserver/upstream/mock/callback?code=abc")
    assert missing.status == 400
    assert await counts(hs) == before


async def test_replayed_callback_after_success_is_refused(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub = new_sub()
    await set_claims(mock_provider, sub, preferred_username="re" + secrets.token_hex(2))
    browser = browser_factory(hs.url)
    form = await browser.go(start_url(hs, "mock"))
    assert form.location is not None
    answer = await browser_factory().go(form.location, method="POST", data={"sub": sub})
    assert answer.location is not None
    done = await browser.go(answer.location)
    assert done.location is not None and done.location.startswith(TRUSTED_CLIENT)
    tokens = await hs.pool.fetchval("SELECT count(*) FROM login_tokens")
    replay = await browser.go(answer.location)
    assert replay.status == 400 and replay.location is None
    assert await hs.pool.fetchval("SELECT count(*) FROM login_tokens") == tokens


async def test_provider_error_and_unknown_provider(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    browser = browser_factory(hs.url, mock_provider.url)
    form = await browser.go(start_url(hs, "mock"))
    assert "oauth2/authorize" in form.url
    before = await counts(hs)
    # The mock's refusal carries no state, so it is refused as such.
    denied = await browser.go(form.url, method="POST", data={"action": "deny"})
    assert "error=access_denied" in denied.url
    assert denied.status == 400 and "Sign-in failed" in denied.text
    assert await counts(hs) == before
    unknown = await browser.go(f"{hs.url}/_homeserver/upstream/nope/start?next=/")
    assert unknown.status == 404


def crafted_config(provider: CraftedProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "idp_id": "crafted",
        "idp_name": "Crafted",
        "issuer": provider.url,
        "client_id": provider.client_id,
        "client_secret": "s",
        "client_auth_method": "client_secret_post",
        **overrides,
    }


async def crafted_sign_in(hs: Any, browser_factory: Any, provider: CraftedProvider) -> Any:
    return await browser_factory(hs.url, provider.url).go(start_url(hs, "crafted"))


async def test_bad_id_tokens_are_refused_and_create_nothing(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    hs = await sso_factory([crafted_config(crafted_provider)])
    before = await counts(hs)
    now = int(time.time())
    cases: list[tuple[str, dict[str, Any]]] = [
        ("signature", {"sign_with": RSAKey.generate_key(2048, {"kid": "k1"})}),
        ("expired", {"claims": {"exp": now - 3600, "iat": now - 7200}}),
        ("nonce", {"nonce_override": "someone-elses-nonce"}),
        ("audience", {"claims": {"aud": "another-client"}}),
        ("issuer", {"claims": {"iss": "https://evil.example"}}),
        ("future", {"claims": {"iat": now + 3600}}),
        ("algorithm", {"header": {"alg": "RS512"}}),
        ("no subject", {"claims": {"sub": None}}),
    ]
    for name, change in cases:
        for attr, value in change.items():
            setattr(crafted_provider, attr, value)
        page = await crafted_sign_in(hs, browser_factory, crafted_provider)
        assert page.status == 400 and page.location is None, name
        assert await counts(hs) == before, name
        crafted_provider.sign_with, crafted_provider.claims = None, {}
        crafted_provider.nonce_override, crafted_provider.header = None, {}

    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    assert page.location is not None and "loginToken=" in page.location


async def test_rotated_provider_keys_are_fetched_again(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    hs = await sso_factory([crafted_config(crafted_provider)])
    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    assert page.location is not None
    crafted_provider.rotate()
    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    assert page.location is not None and "loginToken=" in page.location
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.token", "token": login_token_of(page.location)},
    )
    assert status == 200 and body["user_id"] == "@crafted:localhost"


async def test_existing_user_is_linked_only_when_allowed(
    sso_factory: Any, crafted_provider: CraftedProvider, browser_factory: Any
):
    hs = await sso_factory([crafted_config(crafted_provider)])
    await hs.register("crafted")
    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    assert page.status == 400 and "already taken" in page.text
    assert await hs.pool.fetchval("SELECT count(*) FROM upstream_links") == 0
    await hs.server.stop()

    hs = await sso_factory([crafted_config(crafted_provider, allow_existing_users=True)])
    page = await crafted_sign_in(hs, browser_factory, crafted_provider)
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.token", "token": login_token_of(page.location)},
    )
    assert status == 200 and body["user_id"] == "@crafted:localhost"
