"""Other servers' users' keys: the RemoteKeys door of the key service, and
the device list cache behind it, kept fresh by the EDUs their servers send.

A remote user who shares a room with a local user is cached: their server
sends us an m.device_list_update for every device change and an
m.signing_key_update for every cross-signing change, so /keys/query answers
from the cache for as long as the user has shared a room with us since the
list was fetched. Anyone else (unknown, stale, or not sharing a room) is
asked for with /user/keys/query. Updates are applied in order: each names the
stream_ids it follows (prev_id); one that follows an update we never saw
means the list has a gap, and the whole list is fetched again with
/user/devices. Every change is then announced on our device list stream, so
the clients of local users sharing a room refetch the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import attrs

from federation.http import FEDERATION_V1
from federation.transport import FederationClient, FederationError
from homeserver.devices_sync import DeviceListService
from homeserver.e2e.signing import canonical, loads
from homeserver.errors import MatrixError
from homeserver.identifiers import split_user_id
from homeserver.notifier import Notifier
from storage.e2e_remote import CachedDevice, CachedUser, RemoteKeyStore

logger = logging.getLogger(__name__)

# A resync runs while the remote's transaction waits for our answer.
RESYNC_TIMEOUT_S = 10.0


def _server_of(user_id: str) -> str | None:
    parts = split_user_id(user_id)
    return parts[1] if parts is not None else None


def _device_keys_json(user_id: str, device_id: str, keys: Any) -> str | None:
    """A device keys object of the named device, without its unsigned part."""
    if (
        not isinstance(keys, dict)
        or keys.get("user_id") != user_id
        or keys.get("device_id") != device_id
    ):
        return None
    return canonical({k: v for k, v in keys.items() if k != "unsigned"})


def _cross_signing_json(user_id: str, key: Any, usage: str) -> str | None:
    """A public cross-signing key of the user with this usage."""
    if not isinstance(key, dict) or key.get("user_id") != user_id:
        return None
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages:
        return None
    return canonical(key)


def _display_name(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _from_query(user_id: str, answer: dict[str, Any]) -> CachedUser | None:
    """A user's list from a /user/keys/query answer; None if it names no devices."""
    devices = answer.get("device_keys", {})
    devices = devices.get(user_id) if isinstance(devices, dict) else None
    if not isinstance(devices, dict):
        return None
    cached = []
    for device_id, keys in devices.items():
        keys_json = _device_keys_json(user_id, device_id, keys)
        if keys_json is None:
            continue
        unsigned = keys.get("unsigned")
        name = unsigned.get("device_display_name") if isinstance(unsigned, dict) else None
        cached.append(CachedDevice(device_id, keys_json, _display_name(name)))
    return CachedUser(
        user_id,
        None,
        tuple(cached),
        _cross_signing_json(user_id, _section(answer, "master_keys").get(user_id), "master"),
        _cross_signing_json(
            user_id, _section(answer, "self_signing_keys").get(user_id), "self_signing"
        ),
    )


def _section(answer: dict[str, Any], name: str) -> dict[str, Any]:
    value = answer.get(name)
    return value if isinstance(value, dict) else {}


def _from_user_devices(user_id: str, answer: Any) -> CachedUser:
    """A user's list from a /user/devices answer; ValueError if malformed."""
    if not isinstance(answer, dict) or answer.get("user_id") != user_id:
        raise ValueError("the /user/devices answer is not about the user")
    stream_id = answer.get("stream_id")
    devices = answer.get("devices")
    if type(stream_id) is not int or not isinstance(devices, list):
        raise ValueError("the /user/devices answer has no stream_id or devices")
    cached = []
    for device in devices:
        if not isinstance(device, dict) or not isinstance(device.get("device_id"), str):
            continue
        device_id = device["device_id"]
        cached.append(
            CachedDevice(
                device_id,
                _device_keys_json(user_id, device_id, device.get("keys")),
                _display_name(device.get("device_display_name")),
            )
        )
    return CachedUser(
        user_id,
        stream_id,
        tuple(cached),
        _cross_signing_json(user_id, answer.get("master_key"), "master"),
        _cross_signing_json(user_id, answer.get("self_signing_key"), "self_signing"),
    )


def _add_to_answer(user: CachedUser, wanted: list[str], result: dict[str, Any]) -> None:
    """A user's keys in /keys/query form: the devices asked for (all if none)."""
    devices = {}
    for device in user.devices:
        if device.keys_json is None or (wanted and device.device_id not in wanted):
            continue
        keys = loads(device.keys_json)
        unsigned = {"device_display_name": device.display_name} if device.display_name else {}
        devices[device.device_id] = {**keys, "unsigned": unsigned}
    result["device_keys"][user.user_id] = devices
    if user.master_key_json is not None:
        result["master_keys"][user.user_id] = loads(user.master_key_json)
    if user.self_signing_key_json is not None:
        result["self_signing_keys"][user.user_id] = loads(user.self_signing_key_json)


@attrs.frozen
class DeviceListUpdate:
    """A well-formed m.device_list_update."""

    user_id: str
    device_id: str
    stream_id: int
    prev_ids: tuple[int, ...]
    deleted: bool
    keys_json: str | None
    display_name: str | None

    @classmethod
    def parse(cls, origin: str, content: dict[str, Any]) -> DeviceListUpdate | None:
        """None for an update that is malformed or about another server's user."""
        user_id, device_id = content.get("user_id"), content.get("device_id")
        stream_id, prev_ids = content.get("stream_id"), content.get("prev_id", [])
        if not isinstance(user_id, str) or _server_of(user_id) != origin:
            return None
        if not isinstance(device_id, str) or type(stream_id) is not int:
            return None
        if not isinstance(prev_ids, list) or not all(type(p) is int for p in prev_ids):
            return None
        return cls(
            user_id,
            device_id,
            stream_id,
            tuple(prev_ids),
            content.get("deleted") is True,
            _device_keys_json(user_id, device_id, content.get("keys")),
            _display_name(content.get("device_display_name")),
        )


class FederationRemoteKeys:
    """RemoteKeys over federation, with the device list cache."""

    def __init__(
        self,
        store: RemoteKeyStore,
        client: Callable[[], FederationClient],
        device_lists: DeviceListService,
        notifier: Notifier,
        *,
        server_name: str,
    ) -> None:
        self._store = store
        # The client is built with the federation listener, after the key service.
        self._client = client
        self._device_lists = device_lists
        self._notifier = notifier
        self._server_name = server_name
        # Updates of one user are applied one at a time, in arrival order.
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def _user_lock(self, user_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        self._lock_users[user_id] = self._lock_users.get(user_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[user_id] -= 1
            if not self._lock_users[user_id]:
                del self._lock_users[user_id], self._locks[user_id]

    def _events_position(self) -> int:
        return self._notifier.positions.get("events", 0)

    async def _request(
        self, method: str, server: str, path: str, body: Any, timeout_s: float
    ) -> dict[str, Any]:
        """One request to another server; its failure as the errors the key
        service reports in `failures` (MatrixError, ValueError)."""
        try:
            answer = await self._client().request_json(
                method, server, FEDERATION_V1 + path, body=body, timeout_s=timeout_s
            )
        except FederationError as e:
            raise MatrixError(502, e.errcode or "M_UNKNOWN", str(e)) from None
        if not isinstance(answer, dict):
            raise ValueError(f"{server} answered {path} with no JSON object")
        return answer

    async def query(
        self, server: str, device_keys: dict[str, list[str]], timeout_ms: int
    ) -> dict[str, Any]:
        """The keys of the server's users: from the cache for the users it
        can answer for, with one /user/keys/query for the others."""
        position = self._events_position()
        status = await self._store.status(device_keys, self._server_name)
        result: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        trusted = [u for u in device_keys if status[u].trusted]
        for user in (await self._store.cached(trusted)).values():
            _add_to_answer(user, device_keys[user.user_id], result)
        # Users to be cached are asked for whole, whatever the client wants.
        missing = {
            u: ([] if status[u].shares else d)
            for u, d in device_keys.items()
            if not status[u].trusted
        }
        if not missing:
            return result
        answer = await self._request(
            "POST", server, "/user/keys/query", {"device_keys": missing}, timeout_ms / 1000
        )
        fetched = [user for user in (_from_query(user_id, answer) for user_id in missing) if user]
        await self._store.replace([u for u in fetched if status[u.user_id].shares], position)
        for user in fetched:
            _add_to_answer(user, device_keys[user.user_id], result)
        return result

    async def claim(
        self, server: str, one_time_keys: dict[str, dict[str, str]], timeout_ms: int
    ) -> dict[str, Any]:
        """One /user/keys/claim to the server (one-time keys are never cached)."""
        answer = await self._request(
            "POST", server, "/user/keys/claim", {"one_time_keys": one_time_keys}, timeout_ms / 1000
        )
        found = answer.get("one_time_keys")
        if not isinstance(found, dict):
            raise ValueError(f"{server} answered /user/keys/claim without one_time_keys")
        return {"one_time_keys": found}

    async def device_list_update(self, origin: str, content: dict[str, Any]) -> None:
        """m.device_list_update EDU handler."""
        update = DeviceListUpdate.parse(origin, content)
        if update is None:
            logger.info("ignoring a malformed m.device_list_update from %s", origin)
            return
        user_id = update.user_id
        async with self._user_lock(user_id):
            status = (await self._store.status([user_id], self._server_name))[user_id]
            if not status.shares:
                # Nobody here needs this user's devices.
                return
            known = status.stream_id if status.trusted else None
            if known is not None and update.stream_id <= known:
                # Already applied (a repeated transaction) or older than the list.
                return
            if known is not None and all(p <= known for p in update.prev_ids):
                device = CachedDevice(update.device_id, update.keys_json, update.display_name)
                await self._store.apply_update(
                    user_id, update.stream_id, device, deleted=update.deleted
                )
            else:
                await self._resync(user_id)
            await self._device_lists.record_change(user_id)

    async def _resync(self, user_id: str) -> None:
        """Fetch the user's whole list with /user/devices; if that fails, the
        cache is marked stale, so that the next query asks the remote."""
        server = _server_of(user_id)
        assert server is not None
        position = self._events_position()
        try:
            answer = await self._request(
                "GET", server, f"/user/devices/{quote(user_id, safe='')}", None, RESYNC_TIMEOUT_S
            )
            user = _from_user_devices(user_id, answer)
        except (MatrixError, ValueError, OSError, TimeoutError) as e:
            logger.info("could not resync the devices of %s: %s", user_id, e)
            await self._store.mark_stale(user_id)
            return
        await self._store.replace([user], position)

    async def signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        """m.signing_key_update EDU handler: new master or self-signing key."""
        user_id = content.get("user_id")
        if not isinstance(user_id, str) or _server_of(user_id) != origin:
            logger.info("ignoring a malformed m.signing_key_update from %s", origin)
            return
        master = _cross_signing_json(user_id, content.get("master_key"), "master")
        self_signing = _cross_signing_json(user_id, content.get("self_signing_key"), "self_signing")
        if master is None and self_signing is None:
            return
        async with self._user_lock(user_id):
            status = (await self._store.status([user_id], self._server_name))[user_id]
            if not status.shares:
                return
            await self._store.set_signing_keys(user_id, master, self_signing)
            await self._device_lists.record_change(user_id)
