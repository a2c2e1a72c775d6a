"""Reporting users to the server's admins (POST /users/{userId}/report, v1.14).

The answer never tells whether the user exists (the spec lets a server hide
it): every well-formed report gets 200 `{}`. Reports about accounts of this
server are kept for the admins (`/_synapse/admin/v1/user_reports`); those
about other servers' users or unknown ones are dropped, as Synapse does. Each
reporter is rate limited before anything else, and the reason is at most
1,000 characters (Synapse's limit).
"""

from __future__ import annotations

from homeserver.errors import bad_json
from homeserver.identifiers import split_user_id
from homeserver.ratelimit import RateLimiter
from homeserver.requester import Requester
from storage.user_reports import UserReportStore

MAX_REASON_LENGTH = 1000


class UserReports:
    def __init__(self, store: UserReportStore, limiter: RateLimiter, *, server_name: str) -> None:
        self._store = store
        self._limiter = limiter
        self._server_name = server_name

    async def report(self, requester: Requester, target_user_id: str, reason: str) -> None:
        self._limiter.check(requester.user_id)
        if len(reason) > MAX_REASON_LENGTH:
            raise bad_json(f"'reason' must be at most {MAX_REASON_LENGTH} characters")
        parts = split_user_id(target_user_id)
        if parts is None or parts[1] != self._server_name:
            return
        await self._store.report_local_user(target_user_id, requester.user_id, reason)
