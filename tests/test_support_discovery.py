"""/.well-known/matrix/support: the administrators' contacts, as configured."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.config import ConfigError, config_from_dict


async def test_unconfigured_support_is_not_found(hs: Any) -> None:
    status, body = await hs.request("GET", "/.well-known/matrix/support")
    assert status == 404
    assert body["errcode"] == "M_NOT_FOUND"


async def test_configured_contacts_and_page_are_served(server_factory: Any) -> None:
    hs = await server_factory(
        support={
            "contacts": [
                {"role": "m.role.admin", "matrix_id": "@admin:localhost"},
                {"role": "m.role.security", "email_address": "security@example.org"},
            ],
            "support_page": "https://example.org/help",
        }
    )
    status, body = await hs.request("GET", "/.well-known/matrix/support")
    assert status == 200, body
    assert body == {
        "contacts": [
            {"role": "m.role.admin", "matrix_id": "@admin:localhost"},
            {"role": "m.role.security", "email_address": "security@example.org"},
        ],
        "support_page": "https://example.org/help",
    }


@pytest.mark.parametrize(
    "contact",
    [{"role": "m.role.admin"}, {"role": "m.role.admin", "matrix_id": "admin:localhost"}],
)
def test_a_contact_without_a_way_to_reach_anyone_is_refused(contact: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"support\.contacts\[0\]"):
        config_from_dict({"server_name": "localhost", "support": {"contacts": [contact]}})
