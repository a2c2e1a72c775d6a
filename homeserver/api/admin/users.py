"""Admin API: accounts, their devices and sessions, and shared-secret registration."""

from __future__ import annotations

from typing import Any

from homeserver.admin.shared_secret import SharedSecretRegistration
from homeserver.admin.users import AdminUsers, UserChanges
from homeserver.api.admin.common import order_by, paging, query_bool_or_none
from homeserver.api.http import ClientRequest, admin_endpoint, endpoint
from homeserver.api.params import BIGINT, INT32, opt_bool, opt_str, opt_str_list, req_str
from homeserver.api.session import session_json
from homeserver.errors import bad_json, invalid_param, missing_param
from storage.admin_users import USER_ORDER, RateLimitOverride, UserFilter


def _opt_int(body: dict[str, Any], key: str, valid: range = BIGINT) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise invalid_param(f"'{key}' must be an integer")
    if value is not None and value not in valid:
        raise invalid_param(f"'{key}' is out of range")
    return value


def _user_changes(body: dict[str, Any]) -> UserChanges:
    flags = {}
    for key in ("admin", "deactivated", "locked"):
        if key in body:
            flags[key] = opt_bool(body, key, False)
    if "user_type" in body and body["user_type"] not in (None, "support", "bot"):
        raise invalid_param("Invalid user type")
    return UserChanges(
        password=opt_str(body, "password"),
        logout_devices=opt_bool(body, "logout_devices", True),
        displayname=opt_str(body, "displayname"),
        avatar_url=opt_str(body, "avatar_url"),
        user_type=body.get("user_type"),
        set_user_type="user_type" in body,
        **flags,
    )


class AdminUsersApi:
    def __init__(self, users: AdminUsers) -> None:
        self._users = users

    @admin_endpoint("GET", "/v2/users")
    async def list_users(self, req: ClientRequest) -> dict[str, Any]:
        offset, limit, backwards = paging(req)
        where = UserFilter(
            user_id=req.query.get("user_id"),
            name=req.query.get("name"),
            guests=req.query_bool("guests", True),
            deactivated=req.query_bool("deactivated", False),
            locked=req.query_bool("locked", True),
            admins=query_bool_or_none(req, "admins"),
        )
        return await self._users.list_users(
            where,
            order_by=order_by(req, USER_ORDER, "name"),
            backwards=backwards,
            offset=offset,
            limit=limit,
        )

    @admin_endpoint("GET", "/v2/users/{userId}")
    async def get_user(self, req: ClientRequest) -> dict[str, Any]:
        return await self._users.details(req.params["userId"])

    @admin_endpoint("PUT", "/v2/users/{userId}", action="user.create_or_modify")
    async def put_user(self, req: ClientRequest) -> tuple[int, dict[str, Any]]:
        changes = _user_changes(req.json())
        return await self._users.create_or_modify(req.user, req.params["userId"], changes)

    @admin_endpoint("POST", "/v1/deactivate/{userId}", action="user.deactivate")
    async def deactivate(self, req: ClientRequest) -> dict[str, Any]:
        erase = opt_bool(req.json(), "erase", False)
        await self._users.deactivate(self._users.local_user_id(req.params["userId"]), erase=erase)
        return {"id_server_unbind_result": "success"}

    @admin_endpoint("POST", "/v1/reset_password/{userId}", action="user.reset_password")
    async def reset_password(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        await self._users.reset_password(
            req.params["userId"],
            req_str(body, "new_password"),
            opt_bool(body, "logout_devices", True),
        )
        return {}

    @admin_endpoint("GET", "/v1/whois/{userId}")
    async def whois(self, req: ClientRequest) -> dict[str, Any]:
        return await self._users.whois(req.params["userId"])

    @endpoint("GET", "/admin/whois/{userId}")
    async def client_whois(self, req: ClientRequest) -> dict[str, Any]:
        return await self._users.whois_for(req.user, req.params["userId"])

    @admin_endpoint("GET", "/v1/users/{userId}/joined_rooms")
    async def joined_rooms(self, req: ClientRequest) -> dict[str, Any]:
        return await self._users.joined_rooms(req.params["userId"])

    @admin_endpoint("GET", "/v2/users/{userId}/devices")
    async def devices(self, req: ClientRequest) -> dict[str, Any]:
        devices = await self._users.devices(req.params["userId"])
        return {"devices": devices, "total": len(devices)}

    @admin_endpoint("GET", "/v2/users/{userId}/devices/{deviceId}")
    async def device(self, req: ClientRequest) -> dict[str, Any]:
        return await self._users.device(req.params["userId"], req.params["deviceId"])

    @admin_endpoint("PUT", "/v2/users/{userId}/devices/{deviceId}", action="device.update")
    async def update_device(self, req: ClientRequest) -> dict[str, Any]:
        name = opt_str(req.json(), "display_name")
        await self._users.rename_device(req.params["userId"], req.params["deviceId"], name)
        return {}

    @admin_endpoint("DELETE", "/v2/users/{userId}/devices/{deviceId}", action="device.delete")
    async def delete_device(self, req: ClientRequest) -> dict[str, Any]:
        await self._users.delete_devices(req.params["userId"], [req.params["deviceId"]])
        return {}

    @admin_endpoint("POST", "/v2/users/{userId}/delete_devices", action="device.delete_many")
    async def delete_devices(self, req: ClientRequest) -> dict[str, Any]:
        devices = opt_str_list(req.json(), "devices")
        if devices is None:
            raise missing_param("'devices' is required")
        await self._users.delete_devices(req.params["userId"], devices)
        return {}

    @admin_endpoint("POST", "/v1/users/{userId}/login", action="user.login_as")
    async def login_as(self, req: ClientRequest) -> dict[str, Any]:
        valid_until = _opt_int(req.json(), "valid_until_ms")
        session = await self._users.login_as(req.user, req.params["userId"], valid_until, req.ip)
        return {"access_token": session.access_token}

    @admin_endpoint("POST", "/v1/users/{userId}/shadow_ban", action="user.shadow_ban")
    async def shadow_ban(self, req: ClientRequest) -> dict[str, Any]:
        await self._users.set_shadow_banned(req.params["userId"], True)
        return {}

    @admin_endpoint("DELETE", "/v1/users/{userId}/shadow_ban", action="user.unshadow_ban")
    async def unshadow_ban(self, req: ClientRequest) -> dict[str, Any]:
        await self._users.set_shadow_banned(req.params["userId"], False)
        return {}

    @admin_endpoint("GET", "/v1/users/{userId}/override_ratelimit")
    async def get_ratelimit(self, req: ClientRequest) -> dict[str, Any]:
        return await self._users.ratelimit_override(req.params["userId"])

    @admin_endpoint(
        "POST", "/v1/users/{userId}/override_ratelimit", action="user.override_ratelimit"
    )
    async def set_ratelimit(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        values = {}
        for key in ("messages_per_second", "burst_count"):
            value = _opt_int(body, key, INT32)
            if value is not None and value < 0:
                raise invalid_param(f"'{key}' must be a non-negative integer")
            values[key] = value or 0
        return await self._users.set_ratelimit_override(
            req.params["userId"], RateLimitOverride(**values)
        )

    @admin_endpoint(
        "DELETE", "/v1/users/{userId}/override_ratelimit", action="user.delete_ratelimit"
    )
    async def delete_ratelimit(self, req: ClientRequest) -> dict[str, Any]:
        await self._users.delete_ratelimit_override(req.params["userId"])
        return {}

    @admin_endpoint("GET", "/v1/username_available")
    async def username_available(self, req: ClientRequest) -> dict[str, Any]:
        username = req.query.get("username")
        if username is None:
            raise missing_param("'username' is required")
        return await self._users.username_available(username)


class SharedSecretApi:
    def __init__(self, registration: SharedSecretRegistration, server_name: str) -> None:
        self._registration = registration
        self._server_name = server_name

    @admin_endpoint("GET", "/v1/register", auth=False)
    async def nonce(self, req: ClientRequest) -> dict[str, Any]:
        return {"nonce": await self._registration.new_nonce()}

    @admin_endpoint("POST", "/v1/register", action="user.register_shared_secret", auth=False)
    async def register(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        user_type = opt_str(body, "user_type")
        if user_type not in (None, "support", "bot"):
            raise invalid_param("Invalid user type")
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise bad_json("'admin' must be true or false")
        session = await self._registration.register(
            nonce=req_str(body, "nonce"),
            username=req_str(body, "username"),
            password=req_str(body, "password"),
            admin=admin,
            user_type=user_type,
            displayname=opt_str(body, "displayname"),
            mac=req_str(body, "mac"),
            ip=req.ip,
        )
        return session_json(session, self._server_name)
