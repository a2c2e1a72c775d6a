"""The key counts every /sync response carries for the syncing device: its
one-time keys left per algorithm (so the client uploads more before they run
out) and the algorithms of its unused fallback keys (so it replaces a used
one). One query, whatever the size of the account."""

from __future__ import annotations

from typing import Any

from homeserver.e2e.keys import key_counts_json
from homeserver.sync.response import SyncRequest
from storage.e2e_keys import E2eKeyStore


class KeyCountsSyncProvider:
    def __init__(self, store: E2eKeyStore) -> None:
        self._store = store

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        counts = await self._store.counts(request.user_id, request.requester.device_id)
        response["device_one_time_keys_count"] = key_counts_json(counts)
        response["device_unused_fallback_key_types"] = counts.unused_fallback
