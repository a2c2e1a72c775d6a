"""The key counts every /sync response carries for the syncing device: its
one-time keys left per algorithm (so the client uploads more before they run
out) and the algorithms of its unused fallback keys (so it replaces a used
one). One query, whatever the size of the account; none while the counts
read for the device are known not to have changed: they change only by an
upload or a claim through KeyService, or with the device itself, each of
which makes this provider forget them (a thousand long polls woken by one
message would otherwise each ask again what they asked when they parked).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from homeserver.cluster.invalidation import CacheInvalidations
from homeserver.e2e.keys import key_counts_json
from homeserver.sync.response import SyncRequest
from storage.e2e_keys import E2eKeyStore, KeyCounts

# Devices whose counts are kept (least recently synced dropped first).
MAX_CACHED_DEVICES = 100_000
# The counts' name among the caches shared by a deployment.
_COUNTS_SHARED = "key_counts"


class KeyCountsSyncProvider:
    def __init__(self, store: E2eKeyStore) -> None:
        self._store = store
        self._counts: OrderedDict[tuple[str, str], KeyCounts] = OrderedDict()
        # Bumped by every forgetting: a read that overlapped one is not kept.
        self._generation = 0
        self._shared: CacheInvalidations | None = None

    def share_invalidations(self, shared: CacheInvalidations) -> None:
        """In a deployment of several processes, a claim or upload through one
        (a remote server's claim reaches the federation listener) changes the
        counts every process serves (homeserver/cluster/invalidation.py)."""
        self._shared = shared
        shared.register(
            _COUNTS_SHARED, lambda key: self._forget(*json.loads(key)), self._forget_all
        )

    def forget(self, user_id: str, device_id: str) -> None:
        """The device's keys changed (KeyService: an upload or a claim)."""
        if self._shared is not None:
            self._shared.forget(_COUNTS_SHARED, json.dumps([user_id, device_id]))
        else:
            self._forget(user_id, device_id)

    def _forget(self, user_id: str, device_id: str) -> None:
        self._generation += 1
        self._counts.pop((user_id, device_id), None)

    def _forget_all(self) -> None:
        self._generation += 1
        self._counts.clear()

    async def devices_changed(
        self, user_id: str, added: Sequence[str], removed: Sequence[str]
    ) -> None:
        """A device created or deleted (SessionService) starts afresh."""
        for device_id in (*added, *removed):
            self.forget(user_id, device_id)

    async def add(self, request: SyncRequest, response: dict[str, Any]) -> None:
        device = (request.user_id, request.requester.device_id)
        counts = self._counts.pop(device, None)
        if counts is None:
            generation = self._generation
            counts = await self._store.counts(*device)
            if generation != self._generation:
                # Keys changed while reading: answer with what was read, keep nothing.
                self._fill(response, counts)
                return
        self._counts[device] = counts
        if len(self._counts) > MAX_CACHED_DEVICES:
            self._counts.popitem(last=False)
        self._fill(response, counts)

    @staticmethod
    def _fill(response: dict[str, Any], counts: KeyCounts) -> None:
        response["device_one_time_keys_count"] = key_counts_json(counts)
        response["device_unused_fallback_key_types"] = list(counts.unused_fallback)
