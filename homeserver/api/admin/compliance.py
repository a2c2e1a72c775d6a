"""Admin API: compliance search over every room (homeserver/admin/compliance.py)."""

from __future__ import annotations

from typing import Any

from homeserver.admin.compliance import ComplianceSearch
from homeserver.api.http import ClientRequest, admin_endpoint
from homeserver.errors import invalid_param, missing_param
from homeserver.identifiers import is_valid_room_id, is_valid_user_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_param(f"{key} must be a non-negative integer")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_param(f"{key} must be a string")
    return value


class AdminComplianceApi:
    def __init__(self, search: ComplianceSearch) -> None:
        self._search = search

    # A POST, though it changes nothing: so that every query is audited.
    @admin_endpoint("POST", "/v1/compliance/search", action="compliance_search")
    async def search(self, req: ClientRequest) -> dict[str, Any]:
        body = req.json()
        term = body.get("search_term")
        if term is None:
            raise missing_param("search_term is required")
        if not isinstance(term, str) or not term.strip():
            raise invalid_param("search_term must be a non-empty string")
        sender, room_id = _optional_str(body, "sender"), _optional_str(body, "room_id")
        if sender is not None and not is_valid_user_id(sender):
            raise invalid_param("sender must be a user id")
        if room_id is not None and not is_valid_room_id(room_id):
            raise invalid_param("room_id must be a room id")
        limit = _optional_int(body, "limit")
        if limit is None:
            limit = DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid_param(f"limit must be from 1 to {MAX_LIMIT}")
        next_batch = _optional_str(body, "next_batch")
        if next_batch is not None and (not next_batch.isdigit() or len(next_batch) > 18):
            raise invalid_param("next_batch is not one this server gave")
        return await self._search.search(
            req.user,
            search_term=term,
            sender=sender,
            room_id=room_id,
            from_ts=_optional_int(body, "from_ts"),
            to_ts=_optional_int(body, "to_ts"),
            before=int(next_batch) if next_batch is not None else None,
            limit=limit,
        )
