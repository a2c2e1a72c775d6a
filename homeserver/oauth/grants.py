"""What the server's web pages (homeserver/web: consent, device code and
account pages) may do with OAuth 2.0 grants: the contract between the
authorization server and its pages.

A page shows what a pending request asks for (`pending`, `device_request`),
and once a person has signed in, approves or denies it for them. Approving
an authorization request yields the redirect back to the client carrying a
single-use code; approving a device request lets the polling device fetch
its tokens. The account page lists and ends a person's OAuth sessions and
approves a cross-signing reset (the `m.oauth` UIA stage, MSC4312).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import attrs

from homeserver.accounts.sessions import SessionService, hash_token
from homeserver.oauth.authorization import CODE_LIFETIME_MS
from homeserver.oauth.clients import OAuthClient, OAuthClients
from homeserver.oauth.device_flow import normalise_user_code
from homeserver.oauth.redirects import redirect_url
from storage.database import now_ms
from storage.oauth_grants import OAuthGrantStore
from storage.oauth_sessions import OAuthSessionStore

logger = logging.getLogger(__name__)

# How long an approval on the account page lets the user's clients replace
# their cross-signing keys without another authentication (as MAS allows).
CROSS_SIGNING_RESET_WINDOW_MS = 10 * 60 * 1000


class UnknownGrant(LookupError):
    """The request is unknown, expired, or was already approved or denied."""


@attrs.frozen
class ClientInfo:
    """What a page shows of a client; `metadata` has the localised variants
    (`client_name#fr`, ...) as the client registered them."""

    client_id: str
    name: str | None
    client_uri: str | None
    logo_uri: str | None
    policy_uri: str | None
    tos_uri: str | None
    metadata: dict[str, Any]


def _client_info(client: OAuthClient | None, client_id: str) -> ClientInfo:
    metadata = client.metadata if client is not None else {}
    return ClientInfo(
        client_id=client_id,
        name=metadata.get("client_name"),
        client_uri=metadata.get("client_uri"),
        logo_uri=metadata.get("logo_uri"),
        policy_uri=metadata.get("policy_uri"),
        tos_uri=metadata.get("tos_uri"),
        metadata=dict(metadata),
    )


@attrs.frozen
class PendingAuthorization:
    authorization_id: str
    client: ClientInfo
    scopes: list[str]
    device_id: str
    # prompt=create: the person asked to create an account (MSC4254).
    prompt_create: bool


@attrs.frozen
class PendingDevice:
    user_code: str
    client: ClientInfo
    scopes: list[str]
    device_id: str


@attrs.frozen
class OAuthSessionInfo:
    device_id: str
    client_id: str
    client_name: str | None
    scopes: list[str]
    created_ts: int
    last_seen_ts: int | None
    last_seen_ip: str | None


class OAuthGrants:
    def __init__(
        self,
        store: OAuthGrantStore,
        clients: OAuthClients,
        oauth_sessions: OAuthSessionStore,
        sessions: SessionService,
    ) -> None:
        self._store = store
        self._clients = clients
        self._oauth_sessions = oauth_sessions
        self._sessions = sessions

    async def pending(self, authorization_id: str) -> PendingAuthorization | None:
        record = await self._store.pending_authorization(authorization_id)
        if record is None:
            return None
        client = await self._clients.get(record.client_id)
        return PendingAuthorization(
            authorization_id=authorization_id,
            client=_client_info(client, record.client_id),
            scopes=record.scope.split(" "),
            device_id=record.device_id,
            prompt_create=record.prompt_create,
        )

    async def approve(
        self, authorization_id: str, user_id: str, upstream_sign_in: bytes | None = None
    ) -> str:
        """The redirect back to the client with a new code; raise UnknownGrant
        if the request is no longer pending. `upstream_sign_in` is the
        approving browser's upstream sign-in (UpstreamSignIn.handle_of): the
        token endpoint ties the new device to it for back-channel logout."""
        record = await self._store.pending_authorization(authorization_id)
        code = secrets.token_urlsafe(32)
        if record is None or not await self._store.approve_authorization(
            authorization_id,
            user_id,
            hash_token(code),
            now_ms() + CODE_LIFETIME_MS,
            upstream_sign_in,
        ):
            raise UnknownGrant(authorization_id)
        logger.info(
            "authorization %s of client %s approved by %s",
            authorization_id,
            record.client_id,
            user_id,
        )
        params = {"code": code, "state": record.state}
        return redirect_url(record.redirect_uri, record.response_mode, params)

    async def deny(self, authorization_id: str) -> str:
        """The redirect back to the client with error=access_denied."""
        record = await self._store.delete_authorization(authorization_id)
        if record is None:
            raise UnknownGrant(authorization_id)
        logger.info("authorization %s of client %s denied", authorization_id, record.client_id)
        params = {
            "error": "access_denied",
            "error_description": "The user denied the request",
            "state": record.state,
        }
        return redirect_url(record.redirect_uri, record.response_mode, params)

    async def device_request(self, user_code: str) -> PendingDevice | None:
        record = await self._store.device_grant_by_user_code(normalise_user_code(user_code))
        if record is None:
            return None
        client = await self._clients.get(record.client_id)
        return PendingDevice(
            user_code=record.user_code,
            client=_client_info(client, record.client_id),
            scopes=record.scope.split(" "),
            device_id=record.device_id,
        )

    async def approve_device(
        self, user_code: str, user_id: str, upstream_sign_in: bytes | None = None
    ) -> None:
        """As `approve`, for a device authorization grant."""
        code = normalise_user_code(user_code)
        if not await self._store.decide_device_grant(code, "approved", user_id, upstream_sign_in):
            raise UnknownGrant(user_code)
        logger.info("device grant %s approved by %s", code, user_id)

    async def deny_device(self, user_code: str) -> None:
        code = normalise_user_code(user_code)
        if not await self._store.decide_device_grant(code, "denied", None):
            raise UnknownGrant(user_code)
        logger.info("device grant %s denied", code)

    async def sessions(self, user_id: str) -> list[OAuthSessionInfo]:
        return [
            OAuthSessionInfo(
                device_id=r.device_id,
                client_id=r.client_id,
                client_name=r.client_name,
                scopes=r.scope.split(" "),
                created_ts=r.created_ts,
                last_seen_ts=r.last_seen_ts,
                last_seen_ip=r.last_seen_ip,
            )
            for r in await self._oauth_sessions.list(user_id)
        ]

    async def end_session(self, user_id: str, session_or_device_id: str) -> None:
        """Log an OAuth session's device out, as /logout would (its tokens die
        with it); a device that is no OAuth session of the user is left alone."""
        ours = {r.device_id for r in await self._oauth_sessions.list(user_id)}
        if session_or_device_id not in ours:
            return
        await self._sessions.delete_devices(user_id, [session_or_device_id])
        logger.info("OAuth session %s of %s ended", session_or_device_id, user_id)

    async def approve_cross_signing_reset(self, user_id: str) -> None:
        await self._store.allow_cross_signing_reset(
            user_id, now_ms() + CROSS_SIGNING_RESET_WINDOW_MS
        )
        logger.info("cross-signing reset approved by %s", user_id)

    async def consume_cross_signing_reset(self, user_id: str) -> bool:
        """Whether the user approved a reset lately; the approval is used up."""
        if not await self._store.cross_signing_reset_allowed(user_id):
            return False
        await self._store.use_cross_signing_reset(user_id)
        return True
