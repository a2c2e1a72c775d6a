"""/capabilities names every capability the spec (up to v1.19) defines.

The list comes from the spec's own response schema of GET /capabilities, so
a capability added by a later spec is caught once tests/spec is refreshed.
`m.account_moderation` is for those who may suspend or lock accounts: the
spec has it left out when both would be false.
"""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import make_admin
from tests.spec.openapi import operations
from tests.spec.validation import schema_errors

ADMIN_ONLY = {"m.account_moderation"}


def spec_capabilities() -> tuple[dict[str, Any], set[str]]:
    [op] = [o for o in operations("client-server") if o.name.endswith("/v3/capabilities")]
    schema = op.response_schema(200)
    assert schema is not None
    return schema, set(schema["properties"]["capabilities"]["properties"])


async def test_every_spec_capability_is_stated(hs: Any) -> None:
    schema, defined = spec_capabilities()
    user = await hs.register("someone")
    status, body = await hs.request(
        "GET", "/_matrix/client/v3/capabilities", token=user["access_token"]
    )
    assert status == 200, body
    assert schema_errors(schema, body) == []
    stated = set(body["capabilities"])
    missing = sorted(defined - ADMIN_ONLY - stated)
    assert not missing, f"/capabilities does not state: {missing}"
    assert not stated & ADMIN_ONLY, "account moderation is offered to a user who cannot moderate"


async def test_account_moderation_is_stated_for_admins(hs: Any) -> None:
    schema, _ = spec_capabilities()
    admin = await make_admin(hs)
    status, body = await hs.request("GET", "/_matrix/client/v3/capabilities", token=admin.token)
    assert status == 200, body
    assert schema_errors(schema, body) == []
    moderation = body["capabilities"].get("m.account_moderation")
    assert moderation == {"suspend": True, "lock": True}, body["capabilities"]
