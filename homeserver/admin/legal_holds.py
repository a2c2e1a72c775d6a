"""Legal holds for the admin API: an administrator puts a room or a user on
hold so that nothing of theirs loses its content (retention, redaction
purges, erasure) until the hold is lifted. The admin gate writes every
change to the audit log; the holds themselves are storage/legal_holds.py.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import not_found
from storage.legal_holds import HoldKind, LegalHoldStore


class LegalHolds:
    def __init__(self, store: LegalHoldStore) -> None:
        self._store = store

    async def place(
        self, kind: HoldKind, target: str, reason: str, placed_by: str
    ) -> dict[str, Any]:
        """Place the hold; a target already on hold keeps its first hold,
        which is returned with `placed: false`."""
        placed = await self._store.place(kind, target, reason, placed_by)
        return {**await self.get(kind, target), "placed": placed}

    async def lift(self, kind: HoldKind, target: str) -> None:
        if not await self._store.lift(kind, target):
            raise not_found(f"No legal hold on {target}")

    async def get(self, kind: HoldKind, target: str) -> dict[str, Any]:
        hold = await self._store.get(kind, target)
        if hold is None:
            raise not_found(f"No legal hold on {target}")
        return hold.json()

    async def all(self) -> dict[str, Any]:
        holds = [h.json() for h in await self._store.all()]
        return {"holds": holds, "total": len(holds)}
