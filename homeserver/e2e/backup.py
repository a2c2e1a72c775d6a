"""Server-side key backup: the server stores encrypted megolm session keys
it cannot read, per backup version, and hands them back to the user's
other devices.

Keys are only added to the newest version (an old one gets 403
M_WRONG_ROOM_KEYS_VERSION naming the current one), and a stored key is
replaced only by a better copy, as the spec orders them. Every change of a
version's keys moves its etag, so clients can tell that their view is stale.
"""

from __future__ import annotations

import json
from typing import Any

from homeserver.e2e.signing import canonical
from homeserver.errors import MatrixError, bad_json, invalid_param, missing_param, not_found
from storage.key_backup import (
    BackupVersion,
    KeyBackupStore,
    KeysChanged,
    NoBackupError,
    RoomKey,
    WrongVersionError,
)


def _version_number(version: str) -> int:
    """Versions are decimal numbers here; anything else names no version."""
    if not version.isdecimal() or len(version) > 18:
        raise not_found(f"Unknown backup version '{version}'")
    return int(version)


def _wrong_version(current: int) -> MatrixError:
    return MatrixError(
        403,
        "M_WRONG_ROOM_KEYS_VERSION",
        "Wrong backup version",
        current_version=str(current),
    )


def _version_json(version: BackupVersion) -> dict[str, Any]:
    return {
        "algorithm": version.algorithm,
        "auth_data": json.loads(version.auth_data_json),
        "count": version.count,
        "etag": str(version.etag),
        "version": str(version.version),
    }


def _changed_json(changed: KeysChanged) -> dict[str, Any]:
    return {"etag": str(changed.etag), "count": changed.count}


def _non_negative(data: dict[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise bad_json(f"'{field}' must be a non-negative integer")
    return value


def parse_room_key(room_id: str, session_id: str, data: Any) -> RoomKey:
    """A KeyBackupData object of the spec."""
    if not isinstance(data, dict):
        raise bad_json("A backed-up key must be an object")
    is_verified = data.get("is_verified")
    if not isinstance(is_verified, bool):
        raise bad_json("'is_verified' must be true or false")
    session_data = data.get("session_data")
    if not isinstance(session_data, dict):
        raise bad_json("'session_data' must be an object")
    return RoomKey(
        room_id,
        session_id,
        _non_negative(data, "first_message_index"),
        _non_negative(data, "forwarded_count"),
        is_verified,
        canonical(session_data),
    )


def parse_sessions(room_id: str, body: Any) -> list[RoomKey]:
    """{"sessions": {session id: KeyBackupData}} of one room."""
    sessions = body.get("sessions") if isinstance(body, dict) else None
    if not isinstance(sessions, dict):
        raise bad_json("'sessions' must be an object")
    return [parse_room_key(room_id, s, data) for s, data in sessions.items()]


def parse_rooms(body: dict[str, Any]) -> list[RoomKey]:
    """{"rooms": {room id: {"sessions": ...}}}."""
    rooms = body.get("rooms")
    if not isinstance(rooms, dict):
        raise bad_json("'rooms' must be an object")
    return [key for room_id, room in rooms.items() for key in parse_sessions(room_id, room)]


def key_json(key: RoomKey) -> dict[str, Any]:
    return {
        "first_message_index": key.first_message_index,
        "forwarded_count": key.forwarded_count,
        "is_verified": key.is_verified,
        "session_data": json.loads(key.session_data_json),
    }


class KeyBackupService:
    def __init__(self, store: KeyBackupStore) -> None:
        self._store = store

    @staticmethod
    def _algorithm_and_auth_data(body: dict[str, Any]) -> tuple[str, str]:
        """Both are required (M_MISSING_PARAM); the spec makes `auth_data` an
        object, so anything else, such as SyTest's opaque string, is M_BAD_JSON."""
        for field in ("algorithm", "auth_data"):
            if field not in body:
                raise missing_param(f"'{field}' is required")
        algorithm, auth_data = body["algorithm"], body["auth_data"]
        if not isinstance(algorithm, str):
            raise bad_json("'algorithm' must be a string")
        if not isinstance(auth_data, dict):
            raise bad_json("'auth_data' must be an object")
        return algorithm, canonical(auth_data)

    async def create_version(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        algorithm, auth_data = self._algorithm_and_auth_data(body)
        version = await self._store.create_version(user_id, algorithm, auth_data)
        return {"version": str(version)}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        """The given version, or the newest when None."""
        number = _version_number(version) if version is not None else None
        found = await self._store.get_version(user_id, number)
        if found is None:
            raise not_found(
                "No backup found" if version is None else f"Unknown backup version '{version}'"
            )
        return _version_json(found)

    async def update_version(self, user_id: str, version: str, body: dict[str, Any]) -> None:
        """Replace a version's auth_data; its algorithm cannot change."""
        number = _version_number(version)
        algorithm, auth_data = self._algorithm_and_auth_data(body)
        if "version" in body and body["version"] != version:
            raise invalid_param("The version in the body does not match the path")
        found = await self._store.get_version(user_id, number)
        if found is None:
            raise not_found(f"Unknown backup version '{version}'")
        if found.algorithm != algorithm:
            raise invalid_param("The algorithm of a backup version cannot change")
        await self._store.update_version(user_id, number, auth_data)

    async def delete_version(self, user_id: str, version: str) -> None:
        if not await self._store.delete_version(user_id, _version_number(version)):
            raise not_found(f"Unknown backup version '{version}'")

    async def put_keys(self, user_id: str, version: str, keys: list[RoomKey]) -> dict[str, Any]:
        number = _version_number(version)
        try:
            changed = await self._store.put_keys(user_id, number, keys)
        except NoBackupError:
            raise not_found(f"Unknown backup version '{version}'") from None
        except WrongVersionError as e:
            raise _wrong_version(e.current) from None
        return _changed_json(changed)

    async def get_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> list[RoomKey]:
        number = _version_number(version)
        if await self._store.get_version(user_id, number) is None:
            raise not_found(f"Unknown backup version '{version}'")
        return await self._store.get_keys(user_id, number, room_id, session_id)

    async def delete_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> dict[str, Any]:
        try:
            changed = await self._store.delete_keys(
                user_id, _version_number(version), room_id, session_id
            )
        except NoBackupError:
            raise not_found(f"Unknown backup version '{version}'") from None
        return _changed_json(changed)
