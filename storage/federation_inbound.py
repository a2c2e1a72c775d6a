"""Transactions other servers sent to /send, with the answers we gave them."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from storage.database import now_ms

# How long an answer is kept for retries: senders retry within minutes, and
# Synapse keeps them a day too.
KEEP_MS = 24 * 3600 * 1000


class InboundTransactionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def response(self, origin: str, txn_id: str) -> dict[str, Any] | None:
        """The answer already given to this transaction, if any."""
        text = await self._pool.fetchval(
            """SELECT response FROM federation_inbound_transactions
               WHERE origin = $1 AND txn_id = $2""",
            origin,
            txn_id,
        )
        return json.loads(text) if text is not None else None

    async def remember(self, origin: str, txn_id: str, response: dict[str, Any]) -> None:
        """Store the answer, forgetting those older than KEEP_MS on the way."""
        now = now_ms()
        await self._pool.execute(
            """WITH expired AS (
                   DELETE FROM federation_inbound_transactions WHERE received_ts < $5
               )
               INSERT INTO federation_inbound_transactions (origin, txn_id, response, received_ts)
               VALUES ($1, $2, $3, $4) ON CONFLICT (origin, txn_id) DO NOTHING""",
            origin,
            txn_id,
            json.dumps(response),
            now,
            now - KEEP_MS,
        )
