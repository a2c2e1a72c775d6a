"""The password policy over real HTTP: what `GET /password_policy` tells
clients, and the same rules applied to registration, password changes and
the web pages' password forms, each refusal changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.config import ConfigError, config_from_dict
from tests.web.browser import Browser

V3 = "/_matrix/client/v3"
POLICY = {
    "enabled": True,
    "minimum_length": 8,
    "require_digit": True,
    "require_symbol": True,
    "require_lowercase": True,
    "require_uppercase": True,
}
# Each breaks one rule (the first one checked that it breaks).
WEAK = [
    ("Sh0rt!", "M_PASSWORD_TOO_SHORT"),
    ("NoDigits!here", "M_PASSWORD_NO_DIGIT"),
    ("NoSymbol1here", "M_PASSWORD_NO_SYMBOL"),
    ("all-lower-1", "M_PASSWORD_NO_UPPERCASE"),
    ("ALL-UPPER-1", "M_PASSWORD_NO_LOWERCASE"),
]
STRONG = "Str0ng-enough"


@pytest.fixture
async def strict(server_factory: Any) -> Any:
    return await server_factory(password_policy=POLICY)


async def register(hs: Any, username: str, password: str) -> tuple[int, Any]:
    return await hs.request(
        "POST",
        f"{V3}/register",
        json={"username": username, "password": password, "auth": {"type": "m.login.dummy"}},
    )


async def login(hs: Any, user: str, password: str) -> int:
    status, _ = await hs.request(
        "POST", f"{V3}/login", json={"type": "m.login.password", "user": user, "password": password}
    )
    return status


async def test_the_policy_is_served_without_a_token(strict: Any, hs: Any) -> None:
    expected = {
        "m.minimum_length": 8,
        "m.require_digit": True,
        "m.require_symbol": True,
        "m.require_lowercase": True,
        "m.require_uppercase": True,
    }
    for prefix in (V3, "/_matrix/client/r0", "/_matrix/client/unstable"):
        assert await strict.request("GET", f"{prefix}/password_policy") == (200, expected)
    # No policy configured: an empty one, as Synapse serves it.
    assert await hs.request("GET", f"{V3}/password_policy") == (200, {})


async def test_registration_refuses_weak_passwords(strict: Any) -> None:
    for password, errcode in WEAK:
        status, body = await register(strict, "carol", password)
        assert (status, body["errcode"]) == (400, errcode), password
    # Nothing was created: the name is still free.
    status, body = await strict.request("GET", f"{V3}/register/available?username=carol")
    assert (status, body) == (200, {"available": True})
    status, body = await register(strict, "carol", STRONG)
    assert status == 200, body
    assert await login(strict, "carol", STRONG) == 200


async def test_password_change_refuses_weak_passwords(strict: Any) -> None:
    body = (await register(strict, "dave", STRONG))[1]
    token = body["access_token"]
    auth = {"type": "m.login.password", "user": "dave", "password": STRONG}
    for password, errcode in WEAK:
        status, result = await strict.request(
            "POST",
            f"{V3}/account/password",
            token=token,
            json={"new_password": password, "auth": auth},
        )
        assert (status, result["errcode"]) == (400, errcode), password
    # The old password still works, and so does the session.
    assert await login(strict, "dave", STRONG) == 200
    status, _ = await strict.request("GET", f"{V3}/account/whoami", token=token)
    assert status == 200
    status, _ = await strict.request(
        "POST",
        f"{V3}/account/password",
        token=token,
        json={"new_password": "An0ther-good-one", "auth": auth},
    )
    assert status == 200
    assert await login(strict, "dave", "An0ther-good-one") == 200


async def test_web_forms_apply_the_policy(strict: Any) -> None:
    browser = Browser(strict.url)
    try:
        page = await browser.get("/_homeserver/web/register")
        weak = await browser.submit(
            page, "register", username="erin", password="short", password_confirm="short"
        )
        assert weak.status == 400 and "at least 8 characters" in weak.html
        status, body = await strict.request("GET", f"{V3}/register/available?username=erin")
        assert body == {"available": True}

        landed = await browser.submit(
            weak, "register", username="erin", password=STRONG, password_confirm=STRONG
        )
        assert landed.status == 200
        account = await browser.get("/_homeserver/web/account")
        refused = await browser.submit(
            account,
            "password",
            current_password=STRONG,
            new_password="nodigits-Here",
            new_password_confirm="nodigits-Here",
        )
        assert refused.status == 400 and "at least one digit" in refused.html
        assert await login(strict, "erin", STRONG) == 200
    finally:
        await browser.close()


def test_a_negative_minimum_length_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="minimum_length"):
        config_from_dict({"server_name": "example.org", "password_policy": {"minimum_length": -1}})
