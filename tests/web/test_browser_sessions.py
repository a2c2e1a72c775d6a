"""The signed-in browser shared by the server's web pages."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from homeserver.web.browser_sessions import COOKIE_NAME


def cookie_header(response: web.StreamResponse) -> dict[str, str]:
    morsel = response.cookies[COOKIE_NAME]
    return {"Cookie": f"{COOKIE_NAME}={morsel.value}"}


async def test_a_signed_in_browser_is_recognised_until_it_signs_out(hs: Any) -> None:
    alice = (await hs.register("alice"))["user_id"]
    sessions = hs.server.browser_sessions
    response = web.Response()
    await sessions.sign_in(response, alice, "password")
    morsel = response.cookies[COOKIE_NAME]
    assert morsel["httponly"] and morsel["samesite"] == "Lax"

    headers = cookie_header(response)
    current = await sessions.current(headers)
    assert current is not None
    assert (current.user_id, current.authenticated_by) == (alice, "password")

    # Only the hash of the secret is stored.
    stored = await hs.pool.fetch("SELECT secret_hash FROM browser_sessions")
    assert [row["secret_hash"] for row in stored] == [
        hashlib.sha256(morsel.value.encode()).digest()
    ]

    await sessions.sign_out(headers, web.Response())
    assert await sessions.current(headers) is None


async def test_unknown_or_malformed_cookies_sign_in_no_one(hs: Any) -> None:
    sessions = hs.server.browser_sessions
    assert await sessions.current({}) is None
    assert await sessions.current({"Cookie": f"{COOKIE_NAME}=forged"}) is None
    assert await sessions.current({"Cookie": 'bad"cookie\x7f; ;='}) is None


async def test_csrf_tokens_are_bound_to_the_session_and_the_form(hs: Any) -> None:
    alice = (await hs.register("alice"))["user_id"]
    sessions = hs.server.browser_sessions
    first, second = web.Response(), web.Response()
    await sessions.sign_in(first, alice, "password")
    await sessions.sign_in(second, alice, "password")
    a = await sessions.current(cookie_header(first))
    b = await sessions.current(cookie_header(second))
    assert a is not None and b is not None
    token = a.csrf_token("consent")
    assert a.check_csrf("consent", token)
    assert not a.check_csrf("account.sign_out", token)
    assert not b.check_csrf("consent", token)
    assert not a.check_csrf("consent", None)


async def test_signing_out_a_user_ends_all_their_browsers(hs: Any) -> None:
    bob = (await hs.register("bob"))["user_id"]
    sessions = hs.server.browser_sessions
    responses = [web.Response() for _ in range(2)]
    for response in responses:
        await sessions.sign_in(response, bob, "upstream:keycloak")
    assert await sessions.sign_out_user(bob) == 2
    for response in responses:
        assert await sessions.current(cookie_header(response)) is None


async def test_a_deactivated_account_is_signed_out_of_every_browser(hs: Any) -> None:
    """Whichever path deactivates the account (here the client API)."""
    carol = await hs.register("carol")
    sessions = hs.server.browser_sessions
    response = web.Response()
    await sessions.sign_in(response, carol["user_id"], "password")
    status, body = await hs.request(
        "POST",
        "/_matrix/client/v3/account/deactivate",
        token=carol["access_token"],
        json={
            "auth": {
                "type": "m.login.password",
                "password": "secret",
                "identifier": {"type": "m.id.user", "user": "carol"},
            }
        },
    )
    assert status == 200, body
    assert await sessions.current(cookie_header(response)) is None
