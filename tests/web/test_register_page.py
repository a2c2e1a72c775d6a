"""The registration page creates real accounts, within the server's rules."""

from __future__ import annotations

from typing import Any

from tests.web.browser import Browser

REGISTER = "/_homeserver/web/register"


async def login(hs: Any, user: str, password: str) -> tuple[int, Any]:
    return await hs.request(
        "POST",
        "/_matrix/client/v3/login",
        json={"type": "m.login.password", "user": user, "password": password},
    )


async def test_registration_creates_a_working_account(hs: Any) -> None:
    browser = Browser(hs.url)
    try:
        page = await browser.get(f"{REGISTER}?next=/_homeserver/web/account")
        assert page.status == 200 and "@username:localhost" in page.html
        assert "registration_token" not in page.form("register").fields
        landed = await browser.submit(
            page, "register", username="Carol", password="s3cret!", password_confirm="s3cret!"
        )
        # Signed in at once, on the page `next` named; names are folded to lower case.
        assert landed.path == "/_homeserver/web/account"
        assert "@carol:localhost" in landed.html
    finally:
        await browser.close()
    status, body = await login(hs, "carol", "s3cret!")
    assert status == 200 and body["user_id"] == "@carol:localhost"
    status, _ = await hs.request(
        "GET", "/_matrix/client/v3/account/whoami", token=body["access_token"]
    )
    assert status == 200


async def test_bad_registrations_change_nothing(hs: Any) -> None:
    await hs.register("taken")
    browser = Browser(hs.url)
    try:
        page = await browser.get(REGISTER)
        mismatch = await browser.submit(
            page, "register", username="dave", password="a", password_confirm="b"
        )
        assert mismatch.status == 400 and "do not match" in mismatch.html
        assert mismatch.form("register").fields["username"] == "dave"
        taken = await browser.submit(
            mismatch, "register", username="taken", password="a", password_confirm="a"
        )
        assert taken.status == 400 and "already taken" in taken.html
        invalid = await browser.submit(
            taken, "register", username="no spaces", password="a", password_confirm="a"
        )
        assert invalid.status == 400 and "User names may only contain" in invalid.html
        forged = await browser.post(
            REGISTER,
            {"username": "eve", "password": "a", "password_confirm": "a", "csrf_token": "x"},
        )
        assert forged.status == 403
    finally:
        await browser.close()
    for name in ("dave", "eve", "no spaces"):
        status, _ = await hs.request(
            "GET", f"/_matrix/client/v3/profile/@{name.replace(' ', '%20')}:localhost"
        )
        assert status in (400, 404)
    assert await hs.pool.fetchval("SELECT count(*) FROM browser_sessions") == 0


async def test_a_registration_token_is_required_when_the_server_says_so(
    server_factory: Any,
) -> None:
    hs = await server_factory(registration_requires_token=True)
    await hs.pool.execute(
        "INSERT INTO registration_tokens (token, uses_allowed) VALUES ('letmein', 1)"
    )
    browser = Browser(hs.url)
    try:
        page = await browser.get(REGISTER)
        assert "registration_token" in page.form("register").fields
        wrong = await browser.submit(
            page,
            "register",
            username="frank",
            password="pw",
            password_confirm="pw",
            registration_token="nope",
        )
        assert wrong.status == 403 and "token is not valid" in wrong.html
        landed = await browser.submit(
            wrong,
            "register",
            username="frank",
            password="pw",
            password_confirm="pw",
            registration_token="letmein",
        )
        assert "@frank:localhost" in landed.html
    finally:
        await browser.close()
    status, _ = await login(hs, "frank", "pw")
    assert status == 200
    completed = await hs.pool.fetchval(
        "SELECT completed FROM registration_tokens WHERE token = 'letmein'"
    )
    assert completed == 1
