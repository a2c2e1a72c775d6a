"""Registration with the server's shared secret (Synapse's /_synapse/admin/v1/register).

A client asks for a nonce, then proves it knows `registration_shared_secret`
with an HMAC-SHA1 over nonce, user name, password, admin flag and optional
user type, separated by NUL bytes. Each nonce works once and only for a
minute, so a captured request cannot be replayed. Nonces live in PostgreSQL
(storage/shared_secret_nonces.py): behind a proxy, the GET and the POST may
reach two processes of a deployment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from homeserver.accounts.registration import AccountService
from homeserver.accounts.sessions import Session, SessionService
from homeserver.errors import MatrixError, forbidden
from homeserver.profile import ProfileService
from storage.database import now_ms
from storage.shared_secret_nonces import SharedSecretNonceStore

NONCE_LIFETIME_MS = 60_000


def registration_mac(
    secret: str, nonce: str, username: str, password: str, admin: bool, user_type: str | None
) -> str:
    """The hex HMAC-SHA1 a shared-secret registration must carry."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    parts = [nonce, username, password, "admin" if admin else "notadmin"]
    if user_type is not None:
        parts.append(user_type)
    mac.update(b"\x00".join(p.encode() for p in parts))
    return mac.hexdigest()


class SharedSecretRegistration:
    def __init__(
        self,
        *,
        secret: str | None,
        nonces: SharedSecretNonceStore,
        accounts: AccountService,
        sessions: SessionService,
        profiles: ProfileService,
    ) -> None:
        self._secret = secret
        self._accounts = accounts
        self._sessions = sessions
        self._profiles = profiles
        self._nonces = nonces

    def _enabled(self) -> str:
        if not self._secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        return self._secret

    async def new_nonce(self) -> str:
        self._enabled()
        nonce = secrets.token_hex(32)
        now = now_ms()
        await self._nonces.add(nonce, now + NONCE_LIFETIME_MS, now)
        return nonce

    async def register(
        self,
        *,
        nonce: str,
        username: str,
        password: str,
        admin: bool,
        user_type: str | None,
        displayname: str | None,
        mac: str,
        ip: str | None,
    ) -> Session:
        secret = self._enabled()
        # Used up even when the MAC is wrong (as Synapse): one guess per nonce.
        if not await self._nonces.take(nonce, now_ms()):
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        expected = registration_mac(secret, nonce, username, password, admin, user_type)
        if not hmac.compare_digest(expected, mac.lower()):
            raise forbidden("HMAC incorrect")
        user_id = await self._accounts.check_username(username.lower())
        await self._accounts.register(user_id, password or None, admin=admin, user_type=user_type)
        if displayname:
            await self._profiles.set_field(user_id, user_id, "displayname", displayname)
        return await self._sessions.start_session(user_id, None, None, want_refresh=False, ip=ip)
