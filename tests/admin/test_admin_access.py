"""Only server admins reach the admin API: every route, listed from the router."""

from __future__ import annotations

import re

from tests.admin.conftest import ADMIN

# Routes an unauthenticated caller may use: they are authorised by the
# registration shared secret instead of an access token.
SHARED_SECRET_ROUTES = {("GET", ADMIN + "/v1/register"), ("POST", ADMIN + "/v1/register")}


def admin_routes(hs) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every admin route mounted."""
    app = hs.server._runners[0].app
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        template = info.get("formatter") or info.get("path")
        if template is None or not template.startswith(ADMIN) or route.method == "HEAD":
            continue
        routes.add((route.method, template))
    filled = [
        (method, re.sub(r"\{(\w+)\}", lambda m: _sample(m.group(1)), template))
        for method, template in sorted(routes)
    ]
    return [r for r in filled if (r[0], r[1]) not in SHARED_SECRET_ROUTES]


def _sample(name: str) -> str:
    return {
        "userId": "@someone:localhost",
        "roomId": "!room:localhost",
        "roomIdOrAlias": "!room:localhost",
    }.get(name, "x1")


async def test_every_admin_route_refuses_non_admins(admin_hs):
    hs = admin_hs
    user = await hs.register("plain")
    routes = admin_routes(hs)
    # The table is the router's: it holds every group of the admin API.
    paths = {path for _, path in routes}
    for expected in ("/v2/users", "/v1/rooms", "/v1/registration_tokens", "/v1/audit_log"):
        assert ADMIN + expected in paths
    assert len(routes) > 40
    for method, path in routes:
        status, body = await hs.request(method, path, token=user["access_token"], json={})
        assert (status, body.get("errcode")) == (403, "M_FORBIDDEN"), (method, path, body)
        status, body = await hs.request(method, path, json={})
        assert (status, body.get("errcode")) == (401, "M_MISSING_TOKEN"), (method, path, body)
    # Nothing was changed, and nothing was logged as an admin's change.
    assert await hs.pool.fetchval("SELECT count(*) FROM admin_audit_log") == 0
    assert (
        await hs.pool.fetchval("SELECT admin FROM users WHERE user_id = '@plain:localhost'")
        is False
    )
