"""Who is making an authenticated request."""

from __future__ import annotations

import attrs


@attrs.frozen
class Requester:
    user_id: str
    device_id: str
    token_id: int
    is_guest: bool = False
    # Set when an application service makes the request with its as_token.
    app_service_id: str | None = None
    # False for an appservice registered with `rate_limited: false`.
    rate_limited: bool = True
    # The account is suspended (spec "Account suspension"): read with the
    # access token, so checking it costs no query (accounts/suspension.py).
    suspended: bool = False
