"""Re-authentication for accounts from a provider (the m.login.sso UIA stage
and its fallback page), and MSC3882's /login/get_token."""

from __future__ import annotations

import html
import re
import secrets
from typing import Any

from tests.sso.conftest import mock_provider_config
from tests.sso.providers import MockProvider
from tests.sso.test_legacy_sso import new_sub, set_claims, sso_login_token, token_login


async def signed_in(hs: Any, provider: MockProvider, browser_factory: Any, sub: str) -> dict:
    token = await sso_login_token(hs, browser_factory(hs.url, provider.url), sub)
    status, session = await token_login(hs, token)
    assert status == 200
    return session


async def delete_device(hs: Any, session: dict, auth: dict | None) -> tuple[int, Any]:
    body = {"auth": auth} if auth is not None else {}
    return await hs.request(
        "DELETE",
        f"/_matrix/client/v3/devices/{session['device_id']}",
        token=session["access_token"],
        json=body,
    )


async def confirm_in_fallback(hs: Any, browser: Any, uia_session: str, sub: str) -> Any:
    fallback = await browser.go(
        f"{hs.url}/_matrix/client/v3/auth/m.login.sso/fallback/web?session={uia_session}"
    )
    assert fallback.status == 200 and "Continue with Mock Provider" in fallback.text
    link = re.search(r'href="(/_homeserver/upstream/mock/start\?[^"]+)"', fallback.text)
    assert link
    return await browser.sign_in_at_mock(hs.url + html.unescape(link.group(1)), sub)


async def test_sso_stage_completed_through_the_fallback(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub, intruder = new_sub(), new_sub()
    await set_claims(mock_provider, sub, preferred_username="uia" + secrets.token_hex(2))
    await set_claims(mock_provider, intruder, preferred_username="int" + secrets.token_hex(2))
    session = await signed_in(hs, mock_provider, browser_factory, sub)

    status, challenge = await delete_device(hs, session, None)
    assert status == 401
    assert {"stages": ["m.login.sso"]} in challenge["flows"]
    uia = challenge["session"]

    # An old browser session is not a fresh sign-in.
    stale = await browser_factory(hs.url).go(f"{hs.url}/_homeserver/sso/uia_done?session={uia}")
    assert stale.status == 403
    # Asking to skip the stage does not complete it.
    status, body = await delete_device(hs, session, {"type": "m.login.sso", "session": uia})
    assert status == 401 and body["completed"] == []

    done = await confirm_in_fallback(hs, browser_factory(hs.url, mock_provider.url), uia, sub)
    assert done.status == 200 and "Identity confirmed" in done.text
    assert "onAuthDone" in done.text
    status, body = await delete_device(hs, session, {"session": uia})
    assert status == 200, body
    status, _ = await hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=session["access_token"]
    )
    assert status == 401


async def test_sso_stage_done_by_another_account_is_refused(
    sso_factory: Any, mock_provider: MockProvider, browser_factory: Any
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    sub, intruder = new_sub(), new_sub()
    await set_claims(mock_provider, sub, preferred_username="vic" + secrets.token_hex(2))
    await set_claims(mock_provider, intruder, preferred_username="int" + secrets.token_hex(2))
    session = await signed_in(hs, mock_provider, browser_factory, sub)
    status, challenge = await delete_device(hs, session, None)
    uia = challenge["session"]
    done = await confirm_in_fallback(hs, browser_factory(hs.url, mock_provider.url), uia, intruder)
    assert done.status == 200
    status, body = await delete_device(hs, session, {"session": uia})
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    status, _ = await hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=session["access_token"]
    )
    assert status == 200
    bad = await browser_factory(hs.url).go(
        f"{hs.url}/_matrix/client/v3/auth/m.login.sso/fallback/web?session=unknown"
    )
    assert bad.status == 400


async def test_get_login_token_needs_uia_and_logs_in_once(
    sso_factory: Any, mock_provider: MockProvider
):
    hs = await sso_factory([mock_provider_config(mock_provider)])
    account = await hs.register("getter", "pw-getter")
    path = "/_matrix/client/v1/login/get_token"
    status, challenge = await hs.request("POST", path, token=account["access_token"], json={})
    assert status == 401
    assert {"stages": ["m.login.password"]} in challenge["flows"]
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "getter"},
        "password": "wrong",
        "session": challenge["session"],
    }
    status, body = await hs.request(
        "POST", path, token=account["access_token"], json={"auth": auth}
    )
    assert status == 401 and body["errcode"] == "M_FORBIDDEN"
    auth["password"] = "pw-getter"
    status, body = await hs.request(
        "POST", path, token=account["access_token"], json={"auth": auth}
    )
    assert status == 200 and body["expires_in_ms"] == 120_000
    status, session = await token_login(hs, body["login_token"])
    assert status == 200 and session["user_id"] == account["user_id"]
    assert session["device_id"] != account["device_id"]
    status, _ = await token_login(hs, body["login_token"])
    assert status == 403


async def test_get_login_token_is_off_by_default(server_factory: Any):
    hs = await server_factory()
    account = await hs.register("nogetter")
    status, body = await hs.request(
        "POST", "/_matrix/client/v1/login/get_token", token=account["access_token"], json={}
    )
    assert status == 404 and body["errcode"] == "M_UNRECOGNIZED"
    status, caps = await hs.request(
        "GET", "/_matrix/client/v3/capabilities", token=account["access_token"]
    )
    assert caps["capabilities"]["m.get_login_token"] == {"enabled": False}
