"""What a suspended account may not do (the spec's "Account suspension", v1.13).

The spec leaves the exact set to the server and recommends forbidding:
joining and knocking, sending and accepting invites, sending events, changing
the profile, and redacting other users' events. Everything else (reading,
/sync, leaving and rejecting invites, redacting one's own events, devices,
keys, logging out) stays allowed. As in Synapse, the member events a suspended
user may still send are those with membership `leave`.

The flag comes with the Requester (read with the access token), so these
checks cost no query; only a suspended user's redaction looks its target up.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import MatrixError
from homeserver.requester import Requester

USER_SUSPENDED = "M_USER_SUSPENDED"


def suspended_error(action: str) -> MatrixError:
    """The spec's 403 for an action refused to a suspended account."""
    return MatrixError(403, USER_SUSPENDED, f"{action} is not allowed while suspended")


def refuse_if_suspended(requester: Requester, action: str) -> None:
    """403 M_USER_SUSPENDED if the requester is suspended."""
    if requester.suspended:
        raise suspended_error(action)


def check_membership(requester: Requester, membership: str) -> None:
    """A suspended user may leave (and reject invites), nothing else."""
    if requester.suspended and membership != "leave":
        raise suspended_error(f"Changing membership to {membership!r}")


def check_event(
    requester: Requester, event_type: str, content: dict[str, Any], redacted_sender: str | None
) -> None:
    """Whether a suspended requester may send this event.

    `redacted_sender` is the sender of the event a redaction redacts (None
    when unknown here: nothing of anyone else's can be redacted then).
    """
    if not requester.suspended:
        return
    if event_type == "m.room.member":
        check_membership(requester, str(content.get("membership")))
        return
    if event_type == "m.room.redaction":
        if redacted_sender is not None and redacted_sender != requester.user_id:
            raise suspended_error("Redacting other users' events")
        return
    raise suspended_error("Sending events")
