"""The guard on where the server's web pages send a browser next."""

from __future__ import annotations

import pytest

from homeserver.web.links import DEFAULT_NEXT, safe_next, sign_in_url, upstream_start_url


@pytest.mark.parametrize(
    "path",
    [
        "/_homeserver/web/account",
        "/_matrix/client/v3/login/sso/redirect?redirectUrl=x",
        "/a/b?c=d#e",
    ],
)
def test_local_paths_are_kept(path: str) -> None:
    assert safe_next(path) == path


@pytest.mark.parametrize(
    "path",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
        "evil.example/",
        "/ok\r\nSet-Cookie: x=y",
        "/with space",
        "/back\\slash",
    ],
)
def test_anything_else_goes_to_the_account_page(path: str | None) -> None:
    assert safe_next(path) == DEFAULT_NEXT


def test_urls_carry_the_next_path_encoded() -> None:
    assert sign_in_url("/a?b=c") == "/_homeserver/web/sign_in?next=%2Fa%3Fb%3Dc"
    assert sign_in_url("https://evil.example") == (
        "/_homeserver/web/sign_in?next=%2F_homeserver%2Fweb%2Faccount"
    )
    assert (
        upstream_start_url("key cloak", "/x") == "/_homeserver/upstream/key%20cloak/start?next=%2Fx"
    )
