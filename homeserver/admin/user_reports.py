"""User reports for administrators: list, read and dismiss, in Synapse's shape."""

from __future__ import annotations

from typing import Any

from homeserver.errors import not_found
from storage.user_reports import UserReportStore


class AdminUserReports:
    def __init__(self, store: UserReportStore) -> None:
        self._store = store

    async def list_reports(
        self,
        *,
        user_id: str | None,
        target_user_id: str | None,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> dict[str, Any]:
        rows, total = await self._store.page(
            user_id=user_id,
            target_user_id=target_user_id,
            backwards=backwards,
            offset=offset,
            limit=limit,
        )
        body: dict[str, Any] = {"user_reports": rows, "total": total}
        if offset + len(rows) < total:
            body["next_token"] = offset + len(rows)
        return body

    async def get(self, report_id: int) -> dict[str, Any]:
        row = await self._store.get(report_id)
        if row is None:
            raise not_found("User report not found")
        return row

    async def delete(self, report_id: int) -> None:
        if not await self._store.delete(report_id):
            raise not_found("User report not found")
