"""GET /user/devices for other servers: a local user's whole device list, at
the stream_id of the last m.device_list_update we sent for them, so that the
asking server can apply the updates that follow on top of it."""

from __future__ import annotations

from typing import Any

from homeserver.e2e.signing import loads, with_signatures
from homeserver.errors import invalid_param
from homeserver.identifiers import split_user_id
from storage.e2e_keys import E2eKeyStore
from storage.e2e_remote import RemoteKeyStore
from storage.sessions import SessionStore


class UserDevices:
    def __init__(
        self,
        keys: E2eKeyStore,
        sessions: SessionStore,
        remote_keys: RemoteKeyStore,
        *,
        server_name: str,
    ) -> None:
        self._keys = keys
        self._sessions = sessions
        self._remote_keys = remote_keys
        self._server_name = server_name

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        parts = split_user_id(user_id)
        if parts is None or parts[1] != self._server_name:
            raise invalid_param("The user is not on this server")
        # Read first: the list read after it is at least that recent, so an
        # update the remote gets later never takes it back in time.
        stream_id = await self._remote_keys.local_stream_id(user_id)
        devices = await self._sessions.list_devices(user_id)
        keys = {k.name: k for k in await self._keys.query_devices([(user_id, None)])}
        answer: dict[str, Any] = {"user_id": user_id, "stream_id": stream_id, "devices": []}
        for device in devices:
            entry: dict[str, Any] = {"device_id": device.device_id}
            key = keys.get(device.device_id)
            if key is not None:
                entry["keys"] = with_signatures(loads(key.key_json), key.signatures)
            if device.display_name is not None:
                entry["device_display_name"] = device.display_name
            answer["devices"].append(entry)
        for key in await self._keys.query_cross_signing([user_id], None):
            if key.name in ("master", "self_signing"):
                answer[f"{key.name}_key"] = with_signatures(loads(key.key_json), key.signatures)
        return answer
