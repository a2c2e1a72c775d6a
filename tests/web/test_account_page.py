"""The account page (the OAuth account_management_uri): devices, display
name, password and deactivation, each through the service the client API uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.web.browser import Browser

ACCOUNT = "/_homeserver/web/account"


async def login(hs: Any, user: str, password: str, device: str | None = None) -> tuple[int, Any]:
    body: dict[str, Any] = {"type": "m.login.password", "user": user, "password": password}
    if device:
        body["device_id"] = device
        body["initial_device_display_name"] = f"Phone {device}"
    return await hs.request("POST", "/_matrix/client/v3/login", json=body)


async def whoami(hs: Any, token: str) -> int:
    status, _ = await hs.request("GET", "/_matrix/client/v3/account/whoami", token=token)
    return status


@pytest.fixture
async def alice(hs: Any) -> AsyncIterator[tuple[Browser, dict[str, str]]]:
    """Alice with two logged-in devices, and a browser signed in as her."""
    await hs.register("alice", "pw", inhibit_login=True)
    tokens = {}
    for device in ("DEVA", "DEVB"):
        status, body = await login(hs, "alice", "pw", device)
        assert status == 200
        tokens[device] = body["access_token"]
    browser = Browser(hs.url)
    await browser.sign_in("alice", "pw")
    yield browser, tokens
    await browser.close()


async def test_the_account_page_needs_a_signed_in_browser(hs: Any) -> None:
    browser = Browser(hs.url)
    try:
        page = await browser.get(
            f"{ACCOUNT}?action=org.matrix.session_view&device_id=X", follow=False
        )
        assert page.status == 303
        # After signing in, the browser comes back to the same deep link.
        assert page.location == (
            "/_homeserver/web/sign_in?next=%2F_homeserver%2Fweb%2Faccount%3Faction%3D"
            "org.matrix.session_view%26device_id%3DX"
        )
    finally:
        await browser.close()


async def test_devices_are_listed_and_signing_one_out_is_a_real_logout(
    hs: Any, alice: tuple[Browser, dict[str, str]]
) -> None:
    browser, tokens = alice
    page = await browser.get(f"{ACCOUNT}?action=org.matrix.sessions_list")
    assert "Phone DEVA" in page.html and "Phone DEVB" in page.html
    assert "Change password" not in page.html  # only the section asked for
    # Each device has its own sign-out form; press DEVA's.
    forms = [f for f in page.form_list() if f.fields.get("device_id") == "DEVA"]
    assert len(forms) == 1
    done = await browser.post(forms[0].action, forms[0].fields)
    assert done.status == 200 and "The device was signed out." in done.html
    assert "Phone DEVA" not in done.html and "Phone DEVB" in done.html
    assert await whoami(hs, tokens["DEVA"]) == 401
    assert await whoami(hs, tokens["DEVB"]) == 200


async def test_signing_out_a_device_needs_the_csrf_token(
    hs: Any, alice: tuple[Browser, dict[str, str]]
) -> None:
    browser, tokens = alice
    refused = await browser.post(
        f"{ACCOUNT}/devices/sign_out", {"device_id": "DEVA", "csrf_token": "forged"}
    )
    assert refused.status == 403
    assert await whoami(hs, tokens["DEVA"]) == 200


async def test_one_device_deep_links(hs: Any, alice: tuple[Browser, dict[str, str]]) -> None:
    browser, tokens = alice
    # The unstable name Element X sends, then the spec's.
    for action, device in (
        ("org.matrix.session_view", "DEVB"),
        ("org.matrix.device_delete", "DEVA"),
    ):
        page = await browser.get(f"{ACCOUNT}?action={action}&device_id={device}")
        other = "DEVA" if device == "DEVB" else "DEVB"
        assert f"Phone {device}" in page.html and f"Phone {other}" not in page.html
        await browser.submit(page, "devices/sign_out")
        assert await whoami(hs, tokens[device]) == 401
        missing = await browser.get(f"{ACCOUNT}?action={action}&device_id={device}")
        assert missing.status == 404 and "No such device" in missing.html
    no_device = await browser.get(f"{ACCOUNT}?action=org.matrix.session_view")
    assert no_device.status == 400 and "names no device" in no_device.html


async def test_display_name_change_reaches_the_profile(
    hs: Any, alice: tuple[Browser, dict[str, str]]
) -> None:
    browser, tokens = alice
    status, room = await hs.request(
        "POST", "/_matrix/client/v3/createRoom", token=tokens["DEVB"], json={}
    )
    assert status == 200
    page = await browser.get(f"{ACCOUNT}?action=org.matrix.profile")
    assert page.form("displayname").fields["displayname"] == "alice"
    saved = await browser.submit(page, "displayname", displayname="Alice <A.>")
    assert "Your display name was saved." in saved.html
    assert 'value="Alice &lt;A.&gt;"' in saved.html
    status, body = await hs.request("GET", "/_matrix/client/v3/profile/@alice:localhost")
    assert body["displayname"] == "Alice <A.>"
    # As with PUT /profile, the rooms see the new name.
    status, member = await hs.request(
        "GET",
        f"/_matrix/client/v3/rooms/{room['room_id']}/state/m.room.member/@alice:localhost",
        token=tokens["DEVB"],
    )
    assert member["displayname"] == "Alice <A.>"


async def test_password_change_logs_out_devices(
    hs: Any, alice: tuple[Browser, dict[str, str]]
) -> None:
    browser, tokens = alice
    page = await browser.get(ACCOUNT)
    wrong = await browser.submit(
        page,
        "password",
        current_password="nope",
        new_password="new",
        new_password_confirm="new",
    )
    assert wrong.status == 400 and "current password is not right" in wrong.html
    assert (await login(hs, "alice", "pw"))[0] == 200
    changed = await browser.submit(
        wrong, "password", current_password="pw", new_password="new", new_password_confirm="new"
    )
    assert "Your password was changed." in changed.html  # still signed in here
    assert (await login(hs, "alice", "pw"))[0] == 403
    assert (await login(hs, "alice", "new"))[0] == 200
    for token in tokens.values():
        assert await whoami(hs, token) == 401


async def test_deactivation_needs_confirmation_then_ends_everything(
    hs: Any, alice: tuple[Browser, dict[str, str]]
) -> None:
    browser, tokens = alice
    page = await browser.get(f"{ACCOUNT}?action=org.matrix.account_deactivate")
    unconfirmed = await browser.submit(page, "deactivate", password="pw", confirm="yes")
    assert unconfirmed.status == 400 and "Type the confirmation" in unconfirmed.html
    assert await whoami(hs, tokens["DEVA"]) == 200
    done = await browser.submit(unconfirmed, "deactivate", password="pw", confirm="alice")
    assert done.status == 200 and "Account deactivated" in done.html
    status, body = await login(hs, "alice", "pw")
    assert status == 403 and body["errcode"] == "M_USER_DEACTIVATED"
    assert await whoami(hs, tokens["DEVA"]) == 401
    assert await hs.pool.fetchval("SELECT count(*) FROM browser_sessions") == 0
    again = await browser.get(ACCOUNT, follow=False)
    assert again.status == 303
