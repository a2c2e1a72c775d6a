"""OAuth 2.0 clients registered dynamically (see homeserver/oauth/clients.py)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from storage.database import now_ms


class OAuthClientStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, client_id: str, metadata: dict[str, Any]) -> None:
        await self._pool.execute(
            "INSERT INTO oauth_clients (client_id, metadata, created_ts) VALUES ($1, $2::jsonb, $3)",
            client_id,
            json.dumps(metadata),
            now_ms(),
        )

    async def get(self, client_id: str) -> dict[str, Any] | None:
        """The client's metadata as registered, or None for an unknown client."""
        raw = await self._pool.fetchval(
            "SELECT metadata::text FROM oauth_clients WHERE client_id = $1", client_id
        )
        return json.loads(raw) if raw is not None else None
