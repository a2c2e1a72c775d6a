"""Sending the browser back to the client: parameters in the query or the
fragment of the redirect URI, as the request's `response_mode` said."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

RESPONSE_MODES = ("query", "fragment")


def redirect_url(redirect_uri: str, response_mode: str, params: dict[str, str | None]) -> str:
    """`redirect_uri` with `params` added (None values left out).

    In query mode, a query the client registered is kept (RFC 6749 section
    3.1.2); in fragment mode the fragment is ours, since registered URIs
    never have one.
    """
    encoded = urlencode({k: v for k, v in params.items() if v is not None})
    parts = urlsplit(redirect_uri)
    if response_mode == "fragment":
        return urlunsplit(parts._replace(fragment=encoded))
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit(parts._replace(query=query))
