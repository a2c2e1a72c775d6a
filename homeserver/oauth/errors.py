"""Errors of the OAuth 2.0 endpoints, in the format of their RFCs.

OAuth endpoints do not answer with Matrix errors: RFC 6749 section 5.2 (token
endpoint), RFC 7591 section 3.2.2 (registration), RFC 7009 (revocation) and
RFC 8628 section 3.5 (device flow) all use `{"error", "error_description"}`.
"""

from __future__ import annotations

from typing import Any


class OAuthError(Exception):
    """An OAuth error code (RFC 6749 section 5.2 and friends) with its HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_client(description: str) -> OAuthError:
    # RFC 6749 section 5.2: 401 when the client tried to authenticate.
    return OAuthError("invalid_client", description, 401)


class RedirectError(Exception):
    """An authorization request refused before its redirect URI could be
    trusted: the browser gets an error page, never a redirect (RFC 6749
    section 4.1.2.1)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
