"""Access tokens, refresh tokens and the devices they belong to.

Every authenticated request resolves its token here, so resolved tokens are
cached in memory. Anything that revokes tokens goes through this service,
which drops the cache entries of that user; a generation number keeps a lookup
that raced with a revocation from caching a dead token.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import attrs

from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.errors import MatrixError, not_found, unknown_token
from homeserver.requester import Requester
from storage.sessions import AccessTokenRecord, DeviceRecord, NewTokens, SessionStore

_CACHE_SIZE = 50_000
# The token cache's name among the caches shared by a deployment.
_TOKENS_CACHE = "access_tokens"
# Device "last seen" is written at most this often per device.
_LAST_SEEN_INTERVAL_MS = 5 * 60 * 1000


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


class DeviceListener(Protocol):
    """Told after a user's devices were created (or renamed: `added`) or
    deleted (device lists, to-device)."""

    async def devices_changed(
        self, user_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None: ...


@attrs.frozen
class Session:
    """What a client receives after login, registration or refresh."""

    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None


class SessionService:
    def __init__(self, store: SessionStore, *, refreshable_lifetime_ms: int) -> None:
        self._store = store
        self._refreshable_lifetime_ms = refreshable_lifetime_ms
        self._cache: OrderedDict[bytes, AccessTokenRecord] = OrderedDict()
        # Bumped by every revocation; a lookup that spans one is not cached.
        self._generation = 0
        self._last_seen: dict[tuple[str, str], int] = {}
        self._device_listeners: list[DeviceListener] = []
        self._shared: CacheInvalidations | None = None

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a revocation made by one
        reaches the others' token caches (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register(_TOKENS_CACHE, self._invalidate, self._forget_all)

    def _revoked(self, user_id: str) -> None:
        """After a revocation committed: forget the user's tokens everywhere
        (here again too: a lookup may have cached one since `_invalidate`)."""
        if self._shared is not None:
            self._shared.forget(_TOKENS_CACHE, user_id)
        else:
            self._invalidate(user_id)

    def _forget_all(self) -> None:
        self._generation += 1
        self._cache.clear()

    def add_device_listener(self, listener: DeviceListener) -> None:
        self._device_listeners.append(listener)

    async def _devices_changed(
        self, user_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        for listener in self._device_listeners:
            await listener.devices_changed(user_id, added, removed)

    def _new_tokens(self, want_refresh: bool) -> tuple[str, str | None, NewTokens]:
        access = new_token("mha")
        refresh = new_token("mhr") if want_refresh else None
        valid_until = (
            int(time.time() * 1000) + self._refreshable_lifetime_ms if want_refresh else None
        )
        digests = NewTokens(
            hash_token(access), valid_until, hash_token(refresh) if refresh else None
        )
        return access, refresh, digests

    def _session(self, user_id: str, device_id: str, access: str, refresh: str | None) -> Session:
        expires = self._refreshable_lifetime_ms if refresh else None
        return Session(user_id, device_id, access, refresh, expires)

    async def start_session(
        self,
        user_id: str,
        device_id: str | None,
        display_name: str | None,
        *,
        want_refresh: bool,
        ip: str | None,
    ) -> Session:
        """Log a device in. Reusing a device id revokes that device's old tokens."""
        device_id = device_id or new_device_id()
        access, refresh, digests = self._new_tokens(want_refresh)
        self._invalidate(user_id)
        added = await self._store.login_device(user_id, device_id, display_name, digests, ip)
        self._revoked(user_id)
        if added:
            await self._devices_changed(user_id, [device_id], [])
        return self._session(user_id, device_id, access, refresh)

    async def start_puppet_session(
        self, user_id: str, valid_until_ms: int | None, *, ip: str | None
    ) -> Session:
        """An admin's login as `user_id`: a new device whose token may expire."""
        device_id = new_device_id()
        access = new_token("mha")
        self._invalidate(user_id)
        digests = NewTokens(hash_token(access), valid_until_ms, None)
        added = await self._store.login_device(user_id, device_id, "Admin login", digests, ip)
        self._revoked(user_id)
        if added:
            await self._devices_changed(user_id, [device_id], [])
        return Session(user_id, device_id, access, None, None)

    async def create_device(self, user_id: str, device_id: str, display_name: str | None) -> bool:
        """A device with no access token, for an appservice that acts as it
        with ?device_id= (MSC4190); True if it is new."""
        if not await self._store.add_device(user_id, device_id, display_name):
            return False
        await self._devices_changed(user_id, [device_id], [])
        return True

    def account_changed(self, user_id: str) -> None:
        """Forget cached tokens of a user whose account was locked, deactivated
        or changed (called once the change committed)."""
        self._revoked(user_id)

    async def refresh(self, refresh_token: str) -> Session:
        record = await self._store.get_refresh_token(hash_token(refresh_token))
        if record is None:
            raise unknown_token("Unknown refresh token", soft_logout=False)
        access, refresh, digests = self._new_tokens(True)
        self._invalidate(record.user_id)
        refreshed = await self._store.refresh(record, digests)
        self._revoked(record.user_id)
        if not refreshed:
            raise unknown_token("Unknown refresh token", soft_logout=False)
        return self._session(record.user_id, record.device_id, access, refresh)

    async def authenticate(
        self, token: str, *, ip: str | None, user_agent: str | None, allow_locked: bool = False
    ) -> Requester:
        """Resolve an access token, or raise the 401 the spec gives.

        A locked account gets 401 M_USER_LOCKED everywhere but where
        `allow_locked` (logging out, which the spec lets it do).
        """
        digest = hash_token(token)
        record = self._cache.get(digest)
        if record is None:
            generation = self._generation
            record = await self._store.get_access_token(digest)
            if record is None:
                raise unknown_token("Unknown access token", soft_logout=False)
            if generation == self._generation:
                self._remember(digest, record)
        else:
            self._cache.move_to_end(digest)
        now = int(time.time() * 1000)
        if record.deactivated:
            raise unknown_token("This account has been deactivated", soft_logout=False)
        if record.locked and not allow_locked:
            # The spec's (v1.8) answer to every request of a locked account.
            raise MatrixError(
                401, "M_USER_LOCKED", "This account has been locked", soft_logout=True
            )
        if record.valid_until_ts is not None and record.valid_until_ts <= now:
            raise unknown_token("Access token has expired", soft_logout=True)
        if record.refresh_token_id is not None and not record.used:
            await self._store.mark_access_token_used(record.token_id, record.refresh_token_id)
            self._revoked(record.user_id)
        await self._note_last_seen(record, now, ip, user_agent)
        return Requester(
            record.user_id,
            record.device_id,
            record.token_id,
            record.is_guest,
            suspended=record.suspended,
        )

    def _remember(self, digest: bytes, record: AccessTokenRecord) -> None:
        self._cache[digest] = record
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _invalidate(self, user_id: str) -> None:
        """Forget every cached token of the user; called before any revocation."""
        self._generation += 1
        stale = [d for d, r in self._cache.items() if r.user_id == user_id]
        for digest in stale:
            del self._cache[digest]

    async def _note_last_seen(
        self, record: AccessTokenRecord, now: int, ip: str | None, user_agent: str | None
    ) -> None:
        key = (record.user_id, record.device_id)
        if now - self._last_seen.get(key, 0) < _LAST_SEEN_INTERVAL_MS:
            return
        self._last_seen[key] = now
        await self._store.record_last_seen(record.user_id, record.device_id, now, ip, user_agent)

    async def list_devices(self, user_id: str) -> list[DeviceRecord]:
        return await self._store.list_devices(user_id)

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord:
        device = await self._store.get_device(user_id, device_id)
        if device is None:
            raise not_found("No such device")
        return device

    async def rename_device(self, user_id: str, device_id: str, display_name: str | None) -> None:
        """A new name changes the device list too: other servers' copies carry it."""
        if not await self._store.set_device_display_name(user_id, device_id, display_name):
            raise not_found("No such device")
        await self._devices_changed(user_id, [device_id], [])

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Delete devices with all their tokens; unknown ids are ignored, as the spec allows."""
        self._invalidate(user_id)
        deleted = await self._store.delete_devices(user_id, device_ids)
        self._revoked(user_id)
        if deleted:
            await self._devices_changed(user_id, [], deleted)

    async def delete_all_devices(self, user_id: str, *, except_device: str | None = None) -> None:
        device_ids = [d for d in await self._store.device_ids(user_id) if d != except_device]
        await self.delete_devices(user_id, device_ids)

    async def logout(self, requester: Requester) -> None:
        """The spec's /logout: the token dies and its device is deleted with it."""
        await self.delete_devices(requester.user_id, [requester.device_id])
