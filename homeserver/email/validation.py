"""Validating an email address: mail a link with a token, and remember that
whoever holds the session's client secret proved the address is theirs.

The spec's requestToken flows (registration, password reset, adding an
email) share this: a session per (client_secret, address), identified by its
`sid`; `send_attempt` says whether the client wants another mail or is
retrying a request whose answer it lost. What a validated session is then
used for (a UIA stage, adding the address to an account) asks `validated`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import random
import re
import secrets
import time
from urllib.parse import urlencode, urlsplit

import attrs

from homeserver.config import EmailConfig
from homeserver.email.mailer import Mailer
from homeserver.errors import MatrixError, invalid_param
from homeserver.ratelimit import RateLimiter
from storage.threepid_validation import ThreepidValidationStore, ValidationSession
from storage.user_threepids import UserThreepidStore

EMAIL = "email"
# The spec's client_secret grammar.
_CLIENT_SECRET = re.compile(r"[0-9a-zA-Z.=_-]{1,255}")
# RFC 5321's limit on a forward path (the address with its angle brackets).
_MAX_ADDRESS = 254
# How long a validated session may be used (to register, reset, add).
SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000


class Purpose(enum.Enum):
    REGISTER = "register"
    PASSWORD_RESET = "password_reset"
    ADD = "add"


_INTROS = {
    Purpose.REGISTER: "Someone asked to register an account with this email address.",
    Purpose.PASSWORD_RESET: "Someone asked to reset the password of the account of this email address.",
    Purpose.ADD: "Someone asked to add this email address to their account.",
}


@attrs.frozen
class ValidatedAddress:
    medium: str
    address: str
    validated_ts: int


class ValidationFailed(Exception):
    """A validation link that does not work; the message says why, to a person."""


def check_client_secret(client_secret: str) -> None:
    if not _CLIENT_SECRET.fullmatch(client_secret):
        raise invalid_param("'client_secret' must be 1-255 characters of [0-9a-zA-Z.=_-]")


def canonical_email(value: str) -> str:
    """The address as stored and compared: trimmed and lower-cased (as Synapse
    does); 400 M_INVALID_PARAM for what is no address."""
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or len(address) > _MAX_ADDRESS
        or any(c.isspace() or ord(c) < 32 or c in "<>," for c in address)
        or domain.startswith(".")
        or domain.endswith(".")
        or "@" in domain
    ):
        raise invalid_param("'email' is not a valid email address")
    return address


def check_next_link(next_link: str | None) -> None:
    """Only web addresses: the link is a redirect target after validation."""
    if next_link is None:
        return
    parts = urlsplit(next_link)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_param("'next_link' must be an http or https URL")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class EmailValidation:
    def __init__(
        self,
        store: ThreepidValidationStore,
        threepids: UserThreepidStore,
        mailer: Mailer,
        config: EmailConfig,
        *,
        submit_url: str,
        limiter: RateLimiter,
    ) -> None:
        self._store = store
        self._threepids = threepids
        self._mailer = mailer
        self._config = config
        self._submit_url = submit_url
        self._limiter = limiter

    async def request_token(
        self,
        purpose: Purpose,
        client_secret: str,
        email: str,
        send_attempt: int,
        next_link: str | None,
        *,
        ip: str | None,
    ) -> str:
        """The session id; a mail is sent unless this send_attempt was already."""
        check_client_secret(client_secret)
        address = canonical_email(email)
        check_next_link(next_link)
        domain = address.rpartition("@")[2]
        allowed = self._config.allowed_domains
        if allowed and domain not in {d.lower() for d in allowed}:
            raise MatrixError(403, "M_THREEPID_DENIED", "This email domain is not allowed here")
        owner = await self._threepids.owner(EMAIL, address)
        if purpose is not Purpose.PASSWORD_RESET and owner is not None:
            raise MatrixError(400, "M_THREEPID_IN_USE", "This email address is already in use")
        if purpose is Purpose.PASSWORD_RESET and owner is None:
            if self._config.hide_unknown_addresses:
                # As Synapse: the same answer, after about as long as a mail
                # takes, and a session id that will never validate.
                await asyncio.sleep(random.uniform(0.1, 0.5))
                return secrets.token_urlsafe(16)
            raise MatrixError(400, "M_THREEPID_NOT_FOUND", "No account has this email address")
        now = int(time.time() * 1000)
        await self._store.delete_created_before(now - SESSION_LIFETIME_MS)
        existing = await self._store.find(client_secret, EMAIL, address)
        if existing is not None and send_attempt <= existing.last_send_attempt:
            return existing.session_id
        self._limiter.check(f"address:{address}")
        self._limiter.check(f"ip:{ip}")
        session_id = existing.session_id if existing else secrets.token_urlsafe(16)
        token = secrets.token_urlsafe(24)
        query = urlencode({"sid": session_id, "client_secret": client_secret, "token": token})
        # Recorded before the mail leaves (its link may be opened at once),
        # and put back as it was if the mail could not be sent, so that the
        # client's retry with the same send_attempt sends it.
        await self._store.upsert(
            ValidationSession(
                session_id=session_id,
                client_secret=client_secret,
                medium=EMAIL,
                address=address,
                last_send_attempt=send_attempt,
                token_hash=_token_hash(token),
                token_expires_ts=now + self._config.token_lifetime_ms,
                next_link=next_link,
                created_ts=existing.created_ts if existing else now,
                validated_ts=existing.validated_ts if existing else None,
            )
        )
        try:
            await self._mailer.send(
                address,
                "validation",
                f"{self._mailer.app_name}: confirm your email address",
                intro=_INTROS[purpose],
                address=address,
                link=f"{self._submit_url}?{query}",
                token=token,
            )
        except MatrixError:
            if existing is not None:
                await self._store.upsert(existing)
            else:
                await self._store.delete(session_id)
            raise
        return session_id

    async def submit_token(self, session_id: str, client_secret: str, token: str) -> str | None:
        """Mark the session validated; its next_link. ValidationFailed if the
        link is wrong or expired."""
        session = await self._store.get(session_id)
        if session is None or not hmac.compare_digest(session.client_secret, client_secret):
            raise ValidationFailed("This link is unknown or has expired.")
        if not hmac.compare_digest(session.token_hash, _token_hash(token)):
            raise ValidationFailed("This link is not the latest one sent; use the newest mail.")
        now = int(time.time() * 1000)
        if session.validated_ts is None and now > session.token_expires_ts:
            raise ValidationFailed("This link has expired; ask for a new mail.")
        await self._store.mark_validated(session_id, now)
        return session.next_link

    async def validated(self, session_id: str, client_secret: str) -> ValidatedAddress:
        """The address a validated session proved; 400 M_THREEPID_AUTH_FAILED otherwise."""
        session = await self._store.get(session_id)
        now = int(time.time() * 1000)
        if (
            session is None
            or not hmac.compare_digest(session.client_secret, client_secret)
            or session.created_ts < now - SESSION_LIFETIME_MS
        ):
            raise MatrixError(400, "M_THREEPID_AUTH_FAILED", "Unknown validation session")
        if session.validated_ts is None:
            raise MatrixError(
                400, "M_THREEPID_AUTH_FAILED", "The email address has not been validated yet"
            )
        return ValidatedAddress(session.medium, session.address, session.validated_ts)
