"""`?ts=`: the time a bridged message was sent on the other network.

The Application Service API lets an appservice set the `origin_server_ts` of
the events it sends and the state it sets (timestamp massaging), so bridged
history keeps its real times. Other requesters' `ts` is ignored, as Synapse does.
"""

from __future__ import annotations

from homeserver.api.http import ClientRequest
from homeserver.errors import invalid_param

# The range of a canonical JSON integer; origin_server_ts must be one.
_MAX_TS = 2**53 - 1


def appservice_ts(req: ClientRequest) -> int | None:
    """The `ts` an appservice gave, or None (use the time of sending)."""
    raw = req.query.get("ts")
    if raw is None or req.user.app_service_id is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > _MAX_TS:
        raise invalid_param("ts must be a non-negative integer of milliseconds")
    return int(raw)
