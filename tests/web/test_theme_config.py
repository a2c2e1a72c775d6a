"""The web section of the config: what would break a page or the CSP is refused at start-up."""

from __future__ import annotations

import pytest

from homeserver.config import ConfigError, config_from_dict


def config_with(web: dict[str, object]) -> None:
    config_from_dict({"server_name": "example.org", "web": web})


def test_a_theme_loads() -> None:
    config_from_dict(
        {
            "server_name": "example.org",
            "web": {
                "product_name": "Example Chat",
                "logo_url": "/_matrix/media/logo.png",
                "primary_colour": "#abc",
                "terms_url": "https://example.org/terms",
            },
        }
    )


@pytest.mark.parametrize(
    ("web", "key"),
    [
        ({"primary_colour": "red; background: url(x)"}, "web.primary_colour"),
        ({"text_colour": "#12345"}, "web.text_colour"),
        ({"logo_url": "http://example.org/logo.png"}, "web.logo_url"),
        ({"logo_url": "//evil.example/logo.png"}, "web.logo_url"),
        ({"logo_url": "javascript:alert(1)"}, "web.logo_url"),
        ({"terms_url": "javascript:alert(1)"}, "web.terms_url"),
        ({"product_nam": "typo"}, "product_nam"),
    ],
)
def test_a_bad_theme_is_refused_naming_the_key(web: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_with(web)
