"""The one error for a request that asks for more than the server allows at once.

The ceilings themselves are configuration (`request_limits`); each service
checks the lists it is given against them before doing any work, so a
refused request changes nothing.
"""

from __future__ import annotations

from homeserver.config import RequestLimits
from homeserver.errors import invalid_param

# The configured defaults, for services built without a config (tests).
DEFAULT_LIMITS = RequestLimits()


def check_count(count: int, limit: int, what: str) -> None:
    """400 M_INVALID_PARAM when a request names more `what` than `limit`.

    Not M_LIMIT_EXCEEDED: clients treat that as rate limiting and retry the
    same request later, which would fail again.
    """
    if count > limit:
        raise invalid_param(f"Too many {what} in one request: {count}, at most {limit}")
