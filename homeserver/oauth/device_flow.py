"""The device authorization grant (RFC 8628, MSC4341): a device without a
browser (or a desktop showing a QR code to a phone) asks for a user code,
the person confirms it on the device page, and the device polls the token
endpoint until then."""

from __future__ import annotations

import secrets

from homeserver.accounts.sessions import hash_token
from homeserver.oauth.clients import DEVICE_CODE, OAuthClients
from homeserver.oauth.errors import OAuthError
from homeserver.oauth.scopes import ScopeError, parse_scope
from storage.database import now_ms
from storage.oauth_grants import DeviceGrantRecord, OAuthGrantStore

DEVICE_PAGE_PATH = "/_homeserver/web/device"
# RFC 8628 section 6.1: consonants only (no words, no look-alikes), 8 of them
# (about 34 bits) for a code that lives minutes and is rate limited.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
_USER_CODE_LENGTH = 8


def normalise_user_code(typed: str) -> str:
    """A user code as typed (any case, with dashes or spaces) as stored:
    anything but ASCII letters and digits is dropped, and the length capped,
    so whatever a person typed can be looked up safely."""
    return "".join(c for c in typed.upper()[:64] if c.isascii() and c.isalnum())


def _display(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


class DeviceAuthorizations:
    def __init__(
        self,
        clients: OAuthClients,
        store: OAuthGrantStore,
        *,
        base_url: str,
        lifetime_s: int,
        poll_interval_s: int,
    ) -> None:
        self._clients = clients
        self._store = store
        self._base_url = base_url.rstrip("/")
        self._lifetime_s = lifetime_s
        self._poll_interval_s = poll_interval_s

    async def start(self, client_id: str | None, scope: str | None) -> dict[str, object]:
        """RFC 8628 section 3.2's response."""
        client = await self._clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "Unknown client", 401)
        if DEVICE_CODE not in client.grant_types:
            raise OAuthError("unauthorized_client", "The client did not register this grant")
        try:
            granted = parse_scope(scope)
        except ScopeError as e:
            raise OAuthError("invalid_scope", str(e)) from None
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(_USER_CODE_LENGTH))
        now = now_ms()
        await self._store.add_device_grant(
            hash_token(device_code),
            DeviceGrantRecord(
                user_code=user_code,
                client_id=client.client_id,
                scope=granted.scope,
                device_id=granted.device_id,
                created_ts=now,
                expires_ts=now + self._lifetime_s * 1000,
                status="pending",
                user_id=None,
                last_poll_ts=None,
                poll_interval_s=self._poll_interval_s,
            ),
        )
        verification_uri = self._base_url + DEVICE_PAGE_PATH
        return {
            "device_code": device_code,
            "user_code": _display(user_code),
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": self._lifetime_s,
            "interval": self._poll_interval_s,
        }
