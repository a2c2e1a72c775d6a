"""What the web pages need of the OAuth 2.0 authorization server.

The consent, device-code and account pages drive an authorization the
OAuth layer (homeserver/oauth/grants.py, `OAuthGrants`) validated and
stored; they only show it to a person and pass on their answer. The pages
depend on this Protocol rather than on that module, so either side can be
built and tested on its own and any object with these methods plugs in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ClientInfo(Protocol):
    """A registered client as a page shows it (anyone may register one:
    homeserver/web/client_view.py decides what of it is shown)."""

    @property
    def name(self) -> str | None: ...

    @property
    def client_uri(self) -> str | None: ...

    @property
    def logo_uri(self) -> str | None: ...


class PendingAuthorization(Protocol):
    """An authorization request waiting for the person's consent."""

    @property
    def client(self) -> ClientInfo: ...

    @property
    def scopes(self) -> Sequence[str]: ...

    # The client sent prompt=create: it wants a new account made first (MSC4254).
    @property
    def prompt_create(self) -> bool: ...


class PendingDevice(Protocol):
    """A device authorization (RFC 8628) waiting for its user code."""

    @property
    def client(self) -> ClientInfo: ...

    @property
    def scopes(self) -> Sequence[str]: ...


class OAuthSessionInfo(Protocol):
    """A device signed in through OAuth, and the client it belongs to."""

    @property
    def device_id(self) -> str: ...

    @property
    def client_name(self) -> str | None: ...


class OAuthGrants(Protocol):
    """The decisions the pages hand to the authorization server. Each
    decision raises a LookupError when the request is no longer pending
    (answered meanwhile, in another tab, or expired)."""

    async def pending(self, authorization_id: str) -> PendingAuthorization | None:
        """The pending authorization, or None if unknown, used or expired."""
        ...

    async def approve(
        self, authorization_id: str, user_id: str, upstream_sign_in: bytes | None = None
    ) -> str:
        """Grant it; the URL to send the browser to (the client's redirect URI).
        `upstream_sign_in` names the browser's upstream sign-in, if any."""
        ...

    async def deny(self, authorization_id: str) -> str:
        """Refuse it; the client's redirect URI with error=access_denied."""
        ...

    async def device_request(self, user_code: str) -> PendingDevice | None: ...

    async def approve_device(
        self, user_code: str, user_id: str, upstream_sign_in: bytes | None = None
    ) -> None: ...

    async def deny_device(self, user_code: str) -> None: ...

    async def sessions(self, user_id: str) -> Sequence[OAuthSessionInfo]:
        """The user's devices signed in through OAuth clients."""
        ...

    async def end_session(self, user_id: str, session_or_device_id: str) -> None:
        """Revoke the OAuth tokens of that device (no-op for other devices)."""
        ...

    async def approve_cross_signing_reset(self, user_id: str) -> None:
        """Let the user's clients replace cross-signing keys for a while (MSC4312)."""
        ...
