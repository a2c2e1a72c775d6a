"""OAuth refresh tokens outside the token endpoint.

The token endpoint (homeserver/oauth/tokens.py) rotates an OAuth session's
refresh token and treats a rotated-away one presented again as leaked: it
ends the session. The legacy `POST /refresh` (api/session.py) must not be a
way around that, so it refuses every OAuth-issued refresh token: /refresh
belongs to the spec's legacy authentication API, and its OAuth 2.0 API
(v1.15+, MSC2964) refreshes only with the `refresh_token` grant at the
token endpoint.
"""

from __future__ import annotations

import logging

from homeserver.accounts.sessions import SessionService, hash_token
from homeserver.errors import unknown_token
from storage.oauth_sessions import OAuthSessionStore

logger = logging.getLogger(__name__)


async def end_if_spent(
    oauth_sessions: OAuthSessionStore, sessions: SessionService, digest: bytes
) -> bool:
    """Whether `digest` is of a refresh token rotated away; if so its
    session has leaked and is ended (its device and every token of it)."""
    spent = await oauth_sessions.owner_of_spent_refresh_token(digest)
    if spent is None:
        return False
    logger.warning(
        "refresh token of %s (device %s) reused after rotation; ending the session",
        spent.user_id,
        spent.device_id,
    )
    await sessions.delete_devices(spent.user_id, [spent.device_id])
    return True


class LegacyRefreshGuard:
    def __init__(self, oauth_sessions: OAuthSessionStore, sessions: SessionService) -> None:
        self._oauth_sessions = oauth_sessions
        self._sessions = sessions

    async def check(self, refresh_token: str) -> None:
        """Raise 401 M_UNKNOWN_TOKEN (the error /refresh documents for a token
        it does not take) for an OAuth-issued refresh token. A live one is
        left as it is; one rotated away ends its session, as at the token
        endpoint."""
        digest = hash_token(refresh_token)
        owner = await self._oauth_sessions.owner_of_refresh_token(digest)
        if owner is not None and owner.client_id is not None:
            logger.info("OAuth refresh token of %s refused at /refresh", owner.user_id)
        elif not await end_if_spent(self._oauth_sessions, self._sessions, digest):
            return
        raise unknown_token(
            "This refresh token was issued by the OAuth 2.0 API: refresh it at the token endpoint",
            soft_logout=False,
        )
