"""The token endpoint (RFC 6749 section 5, RFC 8628 section 3.4) and token
revocation (RFC 7009).

An OAuth session is an ordinary device: its tokens are made by the session
service like those of /login, so every endpoint accepts them and /logout,
device deletion and the admin API end them. What OAuth adds is kept next to
it (storage/oauth_sessions.py): the client and scope of the device, and the
refresh tokens rotated away, whose reuse means a leak and ends the session.

A grant approved by a browser signed in through an upstream OpenID Connect
provider carries that sign-in: its device is recorded with it, so the
provider's back-channel logout ends the OAuth session as it ends legacy SSO
devices. A grant whose sign-in has ended meanwhile yields no tokens.
"""

from __future__ import annotations

import logging
from typing import Any

from homeserver.accounts.sessions import Session, SessionService, hash_token
from homeserver.errors import MatrixError
from homeserver.oauth.clients import AUTHORIZATION_CODE, DEVICE_CODE, REFRESH_TOKEN, OAuthClients
from homeserver.oauth.errors import OAuthError, invalid_client, invalid_grant, invalid_request
from homeserver.oauth.id_tokens import IdTokens
from homeserver.oauth.pkce import verifier_matches
from homeserver.oauth.refresh_reuse import end_if_spent
from homeserver.oauth.scopes import OPENID
from homeserver.sso.upstream import UpstreamSignIn
from storage.database import now_ms
from storage.oauth_grants import OAuthGrantStore
from storage.oauth_sessions import OAuthSessionStore
from storage.upstream import SignInRecord

logger = logging.getLogger(__name__)

# RFC 8628 section 3.5: each slow_down adds this many seconds to the interval.
SLOW_DOWN_STEP_S = 5


class OAuthTokens:
    def __init__(
        self,
        clients: OAuthClients,
        grants: OAuthGrantStore,
        oauth_sessions: OAuthSessionStore,
        sessions: SessionService,
        id_tokens: IdTokens,
        upstream: UpstreamSignIn,
    ) -> None:
        self._clients = clients
        self._grants = grants
        self._oauth_sessions = oauth_sessions
        self._sessions = sessions
        self._id_tokens = id_tokens
        self._upstream = upstream

    async def token(self, form: dict[str, str], *, ip: str | None) -> dict[str, Any]:
        """Answer a token request; raise OAuthError as RFC 6749 section 5.2 says."""
        grant_type = form.get("grant_type")
        client = await self._clients.get(form.get("client_id"))
        if client is None:
            raise invalid_client("Unknown client")
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"The client did not register {grant_type}")
        if grant_type == AUTHORIZATION_CODE:
            return await self._authorization_code(client.client_id, client.name, form, ip)
        if grant_type == REFRESH_TOKEN:
            return await self._refresh(client.client_id, form)
        if grant_type == DEVICE_CODE:
            return await self._device_code(client.client_id, client.name, form, ip)
        raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")

    async def _authorization_code(
        self, client_id: str, client_name: str | None, form: dict[str, str], ip: str | None
    ) -> dict[str, Any]:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code or not verifier:
            raise invalid_request("code and code_verifier are required")
        record, first = await self._grants.exchange_code(hash_token(code))
        if record is None:
            logger.warning("client %s presented an unknown or expired code", client_id)
            raise invalid_grant("The code is invalid or has expired")
        if not first:
            # RFC 6749 section 4.1.2: a replayed code revokes what it issued.
            logger.warning(
                "code of authorization %s replayed; ending the session it issued",
                record.authorization_id,
            )
            assert record.user_id is not None
            await self._sessions.delete_devices(record.user_id, [record.device_id])
            raise invalid_grant("The code was already used")
        if record.client_id != client_id:
            logger.warning("client %s presented a code of client %s", client_id, record.client_id)
            raise invalid_grant("The code was issued to another client")
        if form.get("redirect_uri") != record.redirect_uri:
            logger.warning("code of client %s presented with another redirect_uri", client_id)
            raise invalid_grant("redirect_uri differs from the authorization request's")
        if not verifier_matches(verifier, record.code_challenge):
            logger.warning("client %s presented a wrong PKCE code_verifier", client_id)
            raise invalid_grant("The code_verifier does not match the code_challenge")
        assert record.user_id is not None
        origin = await self._origin(
            record.user_id,
            await self._grants.upstream_sign_in_of_authorization(record.authorization_id),
        )
        session = await self._start(
            record.user_id, record.device_id, client_id, client_name, record.scope, ip, origin
        )
        body = self._token_response(session, record.scope)
        if OPENID in record.scope.split(" "):
            body["id_token"] = self._id_tokens.sign(
                record.user_id, client_id, record.nonce, now_ms()
            )
        return body

    async def _device_code(
        self, client_id: str, client_name: str | None, form: dict[str, str], ip: str | None
    ) -> dict[str, Any]:
        device_code = form.get("device_code")
        if not device_code:
            raise invalid_request("device_code is required")
        digest = hash_token(device_code)
        record = await self._grants.poll_device_grant(digest)
        if record is None or record.client_id != client_id:
            raise invalid_grant("Unknown device_code")
        now = now_ms()
        if record.status == "exchanged":
            raise invalid_grant("The device_code was already used")
        if record.status == "denied":
            raise OAuthError("access_denied", "The user denied the request")
        if record.expires_ts <= now:
            raise OAuthError("expired_token", "The device_code has expired")
        if record.status == "pending":
            if (
                record.last_poll_ts is not None
                and now - record.last_poll_ts < record.poll_interval_s * 1000
            ):
                await self._grants.slow_down(digest, SLOW_DOWN_STEP_S)
                raise OAuthError("slow_down", "Polling too fast")
            raise OAuthError("authorization_pending", "The user has not answered yet")
        assert record.user_id is not None
        origin = await self._origin(
            record.user_id, await self._grants.upstream_sign_in_of_device_grant(digest)
        )
        session = await self._start(
            record.user_id, record.device_id, client_id, client_name, record.scope, ip, origin
        )
        return self._token_response(session, record.scope)

    async def _refresh(self, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise invalid_request("refresh_token is required")
        digest = hash_token(token)
        owner = await self._oauth_sessions.owner_of_refresh_token(digest)
        if owner is None:
            await end_if_spent(self._oauth_sessions, self._sessions, digest)
            raise invalid_grant("The refresh token is invalid")
        if owner.client_id != client_id:
            logger.warning("client %s presented a refresh token not its own", client_id)
            raise invalid_grant("The refresh token was issued to another client")
        try:
            session = await self._sessions.refresh(token)
        except MatrixError:
            raise invalid_grant("The refresh token is invalid") from None
        await self._oauth_sessions.spend_refresh_token(digest, owner.user_id, owner.device_id)
        scope = await self._oauth_sessions.scope_of(owner.user_id, owner.device_id)
        return self._token_response(session, scope or "")

    async def _origin(self, user_id: str, handle: bytes | None) -> SignInRecord | None:
        """The upstream sign-in that approved the grant, if any; a grant
        whose sign-in ended since (the provider logged it out) is refused."""
        if handle is None:
            return None
        origin = await self._upstream.origin_of(handle, user_id)
        if origin is None:
            logger.warning("grant of %s approved by an upstream sign-in that has ended", user_id)
            raise invalid_grant("The sign-in that approved this grant has ended")
        return origin

    async def _start(
        self,
        user_id: str,
        device_id: str,
        client_id: str,
        client_name: str | None,
        scope: str,
        ip: str | None,
        origin: SignInRecord | None,
    ) -> Session:
        session = await self._sessions.start_session(
            user_id, device_id, client_name, want_refresh=True, ip=ip
        )
        await self._oauth_sessions.add(user_id, device_id, client_id, scope)
        if origin is not None:
            await self._upstream.device_created(user_id, device_id, origin)
        logger.info("OAuth session %s of %s started for client %s", device_id, user_id, client_id)
        return session

    @staticmethod
    def _token_response(session: Session, scope: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": session.access_token,
            "token_type": "Bearer",
            "refresh_token": session.refresh_token,
            "scope": scope,
        }
        if session.expires_in_ms is not None:
            body["expires_in"] = session.expires_in_ms // 1000
        return body

    async def revoke(self, form: dict[str, str]) -> None:
        """RFC 7009: log the token's device out, as /logout would.

        An unknown token is no error (section 2.2); a token of another
        client, or one not issued by OAuth, is refused.
        """
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")
        client = await self._clients.get(form.get("client_id"))
        if client is None:
            raise invalid_client("Unknown client")
        digest = hash_token(token)
        owner = await self._oauth_sessions.owner_of_access_token(
            digest
        ) or await self._oauth_sessions.owner_of_refresh_token(digest)
        if owner is None:
            return
        if owner.client_id != client.client_id:
            logger.warning("client %s tried to revoke a token not its own", client.client_id)
            raise OAuthError("unauthorized_client", "The token was not issued to this client")
        await self._sessions.delete_devices(owner.user_id, [owner.device_id])
        logger.info("OAuth session %s of %s revoked", owner.device_id, owner.user_id)
