"""Server ACL matching (m.room.server_acl), table-driven."""

from __future__ import annotations

import pytest

from federation.acl import server_allowed

ACL = {"allow": ["*"], "deny": ["evil.example", "*.bad.example", "spam?.example"]}


@pytest.mark.parametrize(
    ("server", "acl", "allowed"),
    [
        ("good.example", None, True),
        ("good.example", ACL, True),
        ("evil.example", ACL, False),
        ("EVIL.example:8448", ACL, False),
        ("x.bad.example", ACL, False),
        ("bad.example", ACL, True),
        ("spam1.example", ACL, False),
        ("spam12.example", ACL, True),
        ("good.example", {"deny": []}, False),
        ("good.example", {"allow": ["*.example"], "deny": []}, True),
        ("good.other", {"allow": ["*.example"]}, False),
        ("1.2.3.4", {"allow": ["*"], "allow_ip_literals": False}, False),
        ("[2001:db8::1]:8448", {"allow": ["*"], "allow_ip_literals": False}, False),
        ("1.2.3.4", {"allow": ["*"]}, True),
        ("good.example", {"allow": "*"}, False),
        ("good.example", {"allow": ["*", 5], "deny": [None]}, True),
        ("not a name:x", {"allow": ["*"]}, False),
    ],
)
def test_server_acl(server: str, acl: dict | None, allowed: bool) -> None:
    assert server_allowed(server, acl) is allowed
