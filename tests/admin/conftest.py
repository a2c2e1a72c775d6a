"""Fixtures of the admin API tests: a server with an admin, a shared secret and
server notices, and a client that calls the admin API as that admin."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

ADMIN = "/_synapse/admin"
V3 = "/_matrix/client/v3"
SHARED_SECRET = "not-so-secret-shared-secret"


@attrs.frozen
class Admin:
    """The server under test and an admin's access token on it."""

    hs: Any
    token: str
    user_id: str

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        return await self.hs.request(method, ADMIN + path, token=self.token, json=json)


async def make_admin(hs: Any, name: str = "root") -> Admin:
    body = await hs.register(name)
    await hs.pool.execute("UPDATE users SET admin = TRUE WHERE user_id = $1", body["user_id"])
    return Admin(hs, body["access_token"], body["user_id"])


@pytest.fixture
async def admin_hs(server_factory: Any) -> Any:
    return await server_factory(
        registration_shared_secret=SHARED_SECRET,
        server_notices={"system_mxid_localpart": "notices", "room_name": "Notices"},
    )


@pytest.fixture
async def admin(admin_hs: Any) -> Admin:
    return await make_admin(admin_hs)


async def login(hs: Any, user: str, password: str) -> tuple[int, Any]:
    return await hs.request(
        "POST",
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )
