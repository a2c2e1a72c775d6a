"""Event reports for administrators: read and dismiss."""

from __future__ import annotations

import json
from typing import Any

from homeserver.errors import not_found
from storage.admin_reports import AdminReportStore

_LIST_KEYS = (
    "id",
    "received_ts",
    "room_id",
    "name",
    "event_id",
    "user_id",
    "reason",
    "score",
    "sender",
    "canonical_alias",
)


class AdminReports:
    def __init__(self, store: AdminReportStore) -> None:
        self._store = store

    async def list_reports(
        self,
        *,
        room_id: str | None,
        user_id: str | None,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> dict[str, Any]:
        rows, total = await self._store.page(
            room_id=room_id, user_id=user_id, backwards=backwards, offset=offset, limit=limit
        )
        body: dict[str, Any] = {
            "event_reports": [{k: r[k] for k in _LIST_KEYS} for r in rows],
            "total": total,
        }
        if offset + len(rows) < total:
            body["next_token"] = offset + len(rows)
        return body

    async def get(self, report_id: int) -> dict[str, Any]:
        row = await self._store.get(report_id)
        if row is None:
            raise not_found("Event report not found")
        body = {k: row[k] for k in _LIST_KEYS}
        body["event_json"] = json.loads(row["event_json"]) if row["event_json"] else None
        return body

    async def delete(self, report_id: int) -> None:
        if not await self._store.delete(report_id):
            raise not_found("Event report not found")
