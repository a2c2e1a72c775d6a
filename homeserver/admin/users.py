"""What administrators do to accounts: create, change, deactivate, lock, shadow-ban,
log in as, override rate limits, and look at sessions."""

from __future__ import annotations

import time
from typing import Any

import attrs

from homeserver.accounts.passwords import PasswordHasher
from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.admin.moderation import Moderation
from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.errors import MatrixError, forbidden, invalid_param, not_found
from homeserver.identifiers import split_user_id
from homeserver.profile import ProfileService
from homeserver.ratelimit import RateLimiter
from homeserver.requester import Requester
from homeserver.rooms.service import RoomService
from storage.admin_users import AdminUserStore, RateLimitOverride, UserFilter
from storage.rooms import RoomStore
from storage.users import UserStore

# Flags of the user details that Synapse reports as booleans.
# The rate limit overrides' name among the mirrors shared by a deployment.
_OVERRIDES_SHARED = "ratelimit_overrides"
_FLAGS = ("is_guest", "admin", "deactivated", "shadow_banned", "erased", "locked", "suspended")


@attrs.frozen
class UserChanges:
    """A PUT /v2/users/{userId} body, checked. None: leave unchanged."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None
    avatar_url: str | None = None
    admin: bool | None = None
    deactivated: bool | None = None
    locked: bool | None = None
    user_type: str | None = None
    set_user_type: bool = False


def user_json(row: dict[str, Any]) -> dict[str, Any]:
    """A user as Synapse's admin API shows it."""
    body = dict(row)
    for flag in _FLAGS:
        body[flag] = bool(body[flag])
    body.update(
        threepids=[],
        external_ids=[],
        appservice_id=None,
        approved=True,
        consent_server_notice_sent=None,
        consent_version=None,
        consent_ts=None,
    )
    return body


class AdminUsers:
    def __init__(
        self,
        *,
        users: UserStore,
        store: AdminUserStore,
        accounts: AccountService,
        sessions: SessionService,
        hasher: PasswordHasher,
        profiles: ProfileService,
        rooms: RoomService,
        room_store: RoomStore,
        write_limiter: RateLimiter,
        moderation: Moderation,
        server_name: str,
    ) -> None:
        self._users = users
        self._store = store
        self._accounts = accounts
        self._sessions = sessions
        self._hasher = hasher
        self._profiles = profiles
        self._rooms = rooms
        self._room_store = room_store
        self._write_limiter = write_limiter
        self._moderation = moderation
        self._server_name = server_name
        self._shared: CacheInvalidations | None = None

    async def start(self) -> None:
        """Load the rate limit overrides into the limiter they change."""
        overrides = await self._store.all_ratelimit_overrides()
        self._write_limiter.clear_overrides()
        for user_id, value in overrides.items():
            self._write_limiter.set_override(user_id, value.messages_per_second, value.burst_count)

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, an override set through one
        limits the user in all (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register_mirror(_OVERRIDES_SHARED, self._reload_override, self.start)

    async def _reload_override(self, user_id: str) -> None:
        value = await self._store.get_ratelimit_override(user_id)
        if value is None:
            self._write_limiter.clear_override(user_id)
        else:
            self._write_limiter.set_override(user_id, value.messages_per_second, value.burst_count)

    def _override_changed(self, user_id: str) -> None:
        if self._shared is not None:
            self._shared.tell_others(_OVERRIDES_SHARED, user_id)

    def local_user_id(self, user_id: str) -> str:
        """`user_id` if it is a valid id of this server; 400 otherwise, as Synapse."""
        parts = split_user_id(user_id)
        if parts is None:
            raise invalid_param(f"Invalid user id {user_id!r}")
        if parts[1] != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Can only look up local users")
        return user_id

    async def existing(self, user_id: str) -> dict[str, Any]:
        row = await self._store.user_details(self.local_user_id(user_id))
        if row is None:
            raise not_found("User not found")
        return row

    async def list_users(
        self, where: UserFilter, *, order_by: str, backwards: bool, offset: int, limit: int
    ) -> dict[str, Any]:
        rows, total = await self._store.list_users(
            where, order_by=order_by, backwards=backwards, offset=offset, limit=limit
        )
        body: dict[str, Any] = {"users": [user_json(r) for r in rows], "total": total}
        if offset + len(rows) < total:
            body["next_token"] = str(offset + len(rows))
        return body

    async def details(self, user_id: str) -> dict[str, Any]:
        return user_json(await self.existing(user_id))

    async def create_or_modify(
        self, requester: Requester, user_id: str, changes: UserChanges
    ) -> tuple[int, dict[str, Any]]:
        """PUT /v2/users: 201 with the new user, or 200 with the changed one."""
        self.local_user_id(user_id)
        if await self._users.get_user(user_id) is None:
            if changes.deactivated:
                raise invalid_param("Cannot create a deactivated user")
            await self._accounts.check_username(user_id[1:].partition(":")[0])
            await self._accounts.register(user_id, changes.password, admin=bool(changes.admin))
            await self._apply(requester, user_id, attrs.evolve(changes, password=None))
            return 201, await self.details(user_id)
        await self._apply(requester, user_id, changes)
        return 200, await self.details(user_id)

    async def _apply(self, requester: Requester, user_id: str, changes: UserChanges) -> None:
        if changes.deactivated is True:
            await self.deactivate(user_id, erase=False)
        elif changes.deactivated is False:
            await self._store.set_flag(user_id, "deactivated", False)
            await self._store.set_flag(user_id, "erased", False)
        if changes.password is not None:
            await self.reset_password(user_id, changes.password, changes.logout_devices)
        for key in ("displayname", "avatar_url"):
            value = getattr(changes, key)
            if value is not None:
                await self._profiles.set_field(user_id, user_id, key, value)
        if changes.admin is not None:
            if requester.user_id == user_id and not changes.admin:
                raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself")
            await self._store.set_flag(user_id, "admin", changes.admin)
        if changes.locked is not None:
            await self._store.set_flag(user_id, "locked", changes.locked)
        if changes.set_user_type:
            await self._store.set_user_type(user_id, changes.user_type)
        self._sessions.account_changed(user_id)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        """Log out everywhere, leave every room, forget the profile and password.

        The user also drops out of the user directory, which lists active
        accounts only.
        """
        await self.existing(user_id)
        await self._sessions.delete_all_devices(user_id)
        me = Requester(user_id, "", 0)
        for membership in ("join", "invite", "knock"):
            for room_id in await self._room_store.rooms_for_user(user_id, membership):
                await self._rooms.set_membership(me, room_id, user_id, "leave")
        await self._users.deactivate(user_id)
        if erase:
            await self._store.set_flag(user_id, "erased", True)
        self._sessions.account_changed(user_id)

    async def reset_password(self, user_id: str, password: str, logout_devices: bool) -> None:
        await self.existing(user_id)
        if not password:
            raise MatrixError(400, "M_WEAK_PASSWORD", "The new password must not be empty")
        await self._users.set_password_hash(user_id, await self._hasher.hash(password))
        if logout_devices:
            await self._sessions.delete_all_devices(user_id)

    async def whois(self, user_id: str) -> dict[str, Any]:
        """Where and with what the user's devices were last seen, in Synapse's
        shape: one session holding a connection per device seen."""
        await self.existing(user_id)
        devices = await self._store.devices(user_id)
        connections = [
            {
                "ip": d["last_seen_ip"],
                "last_seen": d["last_seen_ts"],
                "user_agent": d["last_seen_user_agent"],
            }
            for d in devices
            if d["last_seen_ts"] is not None
        ]
        return {"user_id": user_id, "devices": {"": {"sessions": [{"connections": connections}]}}}

    async def whois_for(self, requester: Requester, user_id: str) -> dict[str, Any]:
        """The client API's whois: for server admins, and for users about themselves."""
        if requester.user_id != user_id:
            user = await self._users.get_user(requester.user_id)
            if user is None or not user.admin:
                raise forbidden("Only server admins may look up other users")
        return await self.whois(user_id)

    async def joined_rooms(self, user_id: str) -> dict[str, Any]:
        await self.existing(user_id)
        rooms = await self._rooms.joined_rooms(user_id)
        return {"joined_rooms": rooms, "total": len(rooms)}

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        await self.existing(user_id)
        return await self._store.devices(user_id)

    async def device(self, user_id: str, device_id: str) -> dict[str, Any]:
        for device in await self.devices(user_id):
            if device["device_id"] == device_id:
                return device
        raise not_found("No such device")

    async def rename_device(self, user_id: str, device_id: str, name: str | None) -> None:
        await self.existing(user_id)
        await self._sessions.rename_device(user_id, device_id, name)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        await self.existing(user_id)
        await self._sessions.delete_devices(user_id, device_ids)

    async def login_as(
        self, requester: Requester, user_id: str, valid_until_ms: int | None, ip: str | None
    ) -> Session:
        """A token for a new session of the user (Synapse's puppet login)."""
        user = await self.existing(user_id)
        if requester.user_id == user_id:
            raise MatrixError(400, "M_UNKNOWN", "Cannot use admin API to login as self")
        if user["deactivated"]:
            raise MatrixError(400, "M_UNKNOWN", "Cannot log in as a deactivated user")
        if valid_until_ms is not None and valid_until_ms <= int(time.time() * 1000):
            raise invalid_param("'valid_until_ms' is in the past")
        return await self._sessions.start_puppet_session(user_id, valid_until_ms, ip=ip)

    async def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        await self.existing(user_id)
        await self._store.set_flag(user_id, "shadow_banned", banned)
        self._moderation.set_shadow_banned(user_id, banned)

    async def ratelimit_override(self, user_id: str) -> dict[str, Any]:
        await self.existing(user_id)
        value = await self._store.get_ratelimit_override(user_id)
        return attrs.asdict(value) if value is not None else {}

    async def set_ratelimit_override(
        self, user_id: str, value: RateLimitOverride
    ) -> dict[str, Any]:
        await self.existing(user_id)
        await self._store.set_ratelimit_override(user_id, value)
        self._write_limiter.set_override(user_id, value.messages_per_second, value.burst_count)
        self._override_changed(user_id)
        return attrs.asdict(value)

    async def delete_ratelimit_override(self, user_id: str) -> None:
        await self.existing(user_id)
        await self._store.delete_ratelimit_override(user_id)
        self._write_limiter.clear_override(user_id)
        self._override_changed(user_id)

    async def username_available(self, username: str) -> dict[str, Any]:
        await self._accounts.check_username(username)
        return {"available": True}
