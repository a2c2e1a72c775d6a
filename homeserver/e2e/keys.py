"""Device keys, one-time keys and fallback keys: upload, query, claim, and
which users' keys changed between two sync tokens.

Everything a request carries is validated before anything is stored, and an
upload is stored in one transaction, so bad input changes nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from homeserver.config import RequestLimits
from homeserver.e2e.changes import KeyChanges
from homeserver.e2e.remote import UNREACHABLE, RemoteKeys
from homeserver.e2e.signing import canonical, loads, verifies, with_signatures
from homeserver.errors import MatrixError, bad_json, invalid_param
from homeserver.identifiers import split_user_id
from homeserver.request_limits import DEFAULT_LIMITS, check_count
from homeserver.requester import Requester
from homeserver.sync.token import SyncToken
from storage.device_lists import DeviceListChanges, DeviceListStore
from storage.e2e_keys import E2eKeyStore, KeyConflictError, KeyCounts, NewKey

# "<algorithm>:<key id>", each part free of colons and whitespace.
_KEY_ID = re.compile(r"([^:\s]{1,100}):([^:\s]{1,200})")
DEFAULT_TIMEOUT_MS = 10_000
# Always reported in /keys/upload and /sync, even at zero: clients use its
# presence to know that the server counts their keys.
SIGNED_CURVE25519 = "signed_curve25519"


def key_counts_json(counts: KeyCounts) -> dict[str, int]:
    return {SIGNED_CURVE25519: 0, **counts.one_time}


def _timeout(body: dict[str, Any]) -> int:
    timeout = body.get("timeout", DEFAULT_TIMEOUT_MS)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise bad_json("'timeout' must be a non-negative integer")
    return timeout


def _parse_keys(value: Any, field: str) -> list[NewKey]:
    """{"<algorithm>:<key id>": key} as one-time or fallback keys. A key is
    a string (unsigned algorithms) or an object holding a string "key";
    signed algorithms ("signed_*") must be objects with signatures."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise bad_json(f"'{field}' must be an object")
    keys = []
    for full_id, key in value.items():
        match = _KEY_ID.fullmatch(full_id)
        if match is None:
            raise invalid_param(f"'{full_id}' in '{field}' is not of the form algorithm:key_id")
        algorithm, key_id = match.groups()
        if isinstance(key, dict):
            if not isinstance(key.get("key"), str):
                raise invalid_param(f"The key '{full_id}' in '{field}' has no string 'key'")
            if algorithm.startswith("signed_") and not isinstance(key.get("signatures"), dict):
                raise invalid_param(f"The key '{full_id}' in '{field}' is not signed")
        elif not isinstance(key, str) or algorithm.startswith("signed_"):
            raise invalid_param(f"The key '{full_id}' in '{field}' is malformed")
        keys.append(NewKey(algorithm, key_id, canonical(key)))
    return keys


def _check_device_keys(device_keys: Any, requester: Requester) -> str:
    """The canonical JSON to store for a device_keys object, which must be
    the caller's own device's, signed by the device's own ed25519 key.

    A missing or mistyped field is 400 M_BAD_JSON (the spec's code for
    malformed JSON); keys for another device, or a signature that does not
    verify, are 400 M_INVALID_PARAM.
    """
    if not isinstance(device_keys, dict):
        raise bad_json("'device_keys' must be an object")
    user_id, device_id = requester.user_id, requester.device_id
    if device_keys.get("user_id") != user_id or device_keys.get("device_id") != device_id:
        raise invalid_param("'device_keys' must be for the device making the request")
    algorithms = device_keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise bad_json("'device_keys.algorithms' must be a list of strings")
    keys = device_keys.get("keys")
    if not isinstance(keys, dict) or not all(isinstance(k, str) for k in keys.values()):
        raise bad_json("'device_keys.keys' must be an object of strings")
    if not isinstance(device_keys.get("signatures"), dict):
        raise bad_json("'device_keys.signatures' must be an object")
    signing_key_id = f"ed25519:{device_id}"
    public_key = keys.get(signing_key_id)
    if public_key is None:
        raise bad_json(f"'device_keys.keys' has no '{signing_key_id}'")
    if not verifies(device_keys, user_id, signing_key_id, public_key):
        raise invalid_param("'device_keys' is not signed by the device's own ed25519 key")
    return canonical({k: v for k, v in device_keys.items() if k != "unsigned"})


def _user_map(body: dict[str, Any], field: str) -> dict[str, Any]:
    value = body.get(field, {})
    if not isinstance(value, dict):
        raise bad_json(f"'{field}' must be an object")
    for user_id in value:
        if split_user_id(user_id) is None:
            raise invalid_param(f"'{user_id}' in '{field}' is not a user id")
    return value


class KeyService:
    def __init__(
        self,
        store: E2eKeyStore,
        device_list_store: DeviceListStore,
        changes: KeyChanges,
        *,
        server_name: str,
        remote: RemoteKeys | None,
        limits: RequestLimits = DEFAULT_LIMITS,
    ) -> None:
        self._limits = limits
        self._store = store
        self._device_lists = device_list_store
        self._changes = changes
        self._server_name = server_name
        self._remote = remote
        # Told (user, device) after the device's key counts changed.
        self._counts_listeners: list[Callable[[str, str], None]] = []

    def add_counts_listener(self, listener: Callable[[str, str], None]) -> None:
        """Hear of every device whose one-time or fallback keys changed."""
        self._counts_listeners.append(listener)

    def _counts_changed(self, devices: Iterable[tuple[str, str]]) -> None:
        for user_id, device_id in devices:
            for listener in self._counts_listeners:
                listener(user_id, device_id)

    def _is_local(self, user_id: str) -> bool:
        parts = split_user_id(user_id)
        return parts is not None and parts[1] == self._server_name

    async def upload(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        """POST /keys/upload; returns the device's one-time key counts."""
        device_keys = body.get("device_keys")
        device_keys_json = (
            _check_device_keys(device_keys, requester) if device_keys is not None else None
        )
        one_time = _parse_keys(body.get("one_time_keys"), "one_time_keys")
        fallback = _parse_keys(body.get("fallback_keys"), "fallback_keys")
        if len({k.algorithm for k in fallback}) != len(fallback):
            raise invalid_param("At most one fallback key per algorithm")
        try:
            new_device_keys, counts = await self._store.upload(
                requester.user_id, requester.device_id, device_keys_json, one_time, fallback
            )
        except KeyConflictError as e:
            raise invalid_param(str(e)) from None
        finally:
            self._counts_changed([(requester.user_id, requester.device_id)])
        if new_device_keys:
            await self._changes.device_keys_changed(requester.user_id, [requester.device_id])
        return {"one_time_key_counts": key_counts_json(counts)}

    async def query(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        """POST /keys/query."""
        wanted = _user_map(body, "device_keys")
        check_count(len(wanted), self._limits.max_users_per_key_query, "users")
        timeout = _timeout(body)
        for user_id, devices in wanted.items():
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise bad_json(f"'device_keys.{user_id}' must be a list of device ids")
        local = {u: d for u, d in wanted.items() if self._is_local(u)}
        result: dict[str, Any] = {
            "device_keys": {},
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
            "failures": {},
        }
        await self._local_keys(local, requester.user_id, result)
        remote = {u: d for u, d in wanted.items() if u not in local}
        await self._per_server(remote, result, self._query_server, timeout)
        return result

    async def query_for_server(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /federation/v1/user/keys/query: another server asks for our
        users' keys. Users of other servers are left out; cross-signing keys
        carry their owner's signatures only (and no user-signing key)."""
        wanted = _user_map(body, "device_keys")
        for user_id, devices in wanted.items():
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise bad_json(f"'device_keys.{user_id}' must be a list of device ids")
        result: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        local = {u: d for u, d in wanted.items() if self._is_local(u)}
        await self._local_keys(local, None, result)
        return result

    async def _local_keys(
        self, local: dict[str, list[str]], viewer: str | None, result: dict[str, Any]
    ) -> None:
        """Fill `result` with the keys of local users ({user: devices, [] for
        all}) as `viewer` may see them (None: another server)."""
        pairs: list[tuple[str, str | None]] = list(
            {
                (user_id, device_id)
                for user_id, devices in local.items()
                for device_id in (devices or [None])
            }
        )
        result["device_keys"].update({user_id: {} for user_id in local})
        for device in await self._store.query_devices(pairs):
            key = with_signatures(loads(device.key_json), device.signatures)
            unsigned: dict[str, Any] = {}
            if device.display_name is not None:
                unsigned["device_display_name"] = device.display_name
            result["device_keys"][device.user_id][device.name] = {**key, "unsigned": unsigned}
        for key in await self._store.query_cross_signing(local, viewer):
            if key.name == "user_signing" and key.user_id != viewer:
                continue
            section = result[f"{key.name}_keys"]
            section[key.user_id] = with_signatures(loads(key.key_json), key.signatures)

    async def claim(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        """POST /keys/claim: one key per device and algorithm asked for."""
        wanted = _user_map(body, "one_time_keys")
        devices = sum(len(d) if isinstance(d, dict) else 1 for d in wanted.values())
        check_count(devices, self._limits.max_devices_per_key_claim, "devices")
        timeout = _timeout(body)
        triples = self._local_claims(wanted)
        result: dict[str, Any] = {"one_time_keys": await self._claim_local(triples), "failures": {}}
        remote = {u: d for u, d in wanted.items() if not self._is_local(u)}
        await self._per_server(remote, result, self._claim_server, timeout)
        return result

    async def claim_for_server(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /federation/v1/user/keys/claim: another server claims keys of
        our users' devices (users of other servers are left out)."""
        wanted = _user_map(body, "one_time_keys")
        triples = self._local_claims(wanted)
        return {"one_time_keys": await self._claim_local(triples)}

    def _local_claims(self, wanted: dict[str, Any]) -> set[tuple[str, str, str]]:
        """(user, device, algorithm) of our users' devices in a claim's
        one_time_keys; 400 if a user's entry does not map devices to algorithms."""
        triples: set[tuple[str, str, str]] = set()
        for user_id, devices in wanted.items():
            if not isinstance(devices, dict) or not all(
                isinstance(a, str) for a in devices.values()
            ):
                raise bad_json(f"'one_time_keys.{user_id}' must map device ids to algorithms")
            if self._is_local(user_id):
                triples.update((user_id, d, a) for d, a in devices.items())
        return triples

    async def _claim_local(self, triples: set[tuple[str, str, str]]) -> dict[str, Any]:
        claimed: dict[str, Any] = {}
        try:
            keys = await self._store.claim(triples)
        finally:
            self._counts_changed({(user_id, device_id) for user_id, device_id, _ in triples})
        for key in keys:
            device = claimed.setdefault(key.user_id, {})
            device.setdefault(key.device_id, {})[f"{key.algorithm}:{key.key_id}"] = loads(
                key.key_json
            )
        return claimed

    async def changes(
        self, requester: Requester, since: SyncToken, upto: SyncToken
    ) -> DeviceListChanges:
        """GET /keys/changes: the users whose keys changed between two sync
        tokens, among those sharing a room, and those who stopped sharing one."""
        return await self._device_lists.changes(
            requester.user_id,
            since["device_lists"],
            max(since["device_lists"], upto["device_lists"]),
            since["events"],
            max(since["events"], upto["events"]),
        )

    async def _per_server(
        self,
        remote_users: dict[str, Any],
        result: dict[str, Any],
        ask: Callable[[str, dict[str, Any], dict[str, Any], int], Awaitable[None]],
        timeout_ms: int,
    ) -> None:
        """Ask each remote server once for its users, all at once; a server
        that fails (or no federation at all) is named in `failures`."""
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, value in remote_users.items():
            parts = split_user_id(user_id)
            assert parts is not None
            by_server.setdefault(parts[1], {})[user_id] = value
        if self._remote is None:
            result["failures"].update({server: UNREACHABLE for server in by_server})
            return

        async def one(server: str, users: dict[str, Any]) -> None:
            try:
                await asyncio.wait_for(ask(server, users, result, timeout_ms), timeout_ms / 1000)
            except (MatrixError, OSError, TimeoutError, ValueError) as e:
                result["failures"][server] = {"status": 503, "message": str(e) or type(e).__name__}

        await asyncio.gather(*(one(s, u) for s, u in by_server.items()))

    async def _query_server(
        self, server: str, users: dict[str, Any], result: dict[str, Any], timeout_ms: int
    ) -> None:
        assert self._remote is not None
        answer = await self._remote.query(server, users, timeout_ms)
        for section in ("device_keys", "master_keys", "self_signing_keys"):
            found = answer.get(section)
            if isinstance(found, dict):
                result[section].update({u: v for u, v in found.items() if u in users})

    async def _claim_server(
        self, server: str, users: dict[str, Any], result: dict[str, Any], timeout_ms: int
    ) -> None:
        assert self._remote is not None
        answer = await self._remote.claim(server, users, timeout_ms)
        found = answer.get("one_time_keys")
        if isinstance(found, dict):
            result["one_time_keys"].update({u: v for u, v in found.items() if u in users})
